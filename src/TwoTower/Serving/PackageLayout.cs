using System.Text.Json;
using System.Text.Json.Nodes;

namespace TwoTower.Serving;

/// <summary>The files of a serving package (artifacts/package/), as Package writes them and the Recommender reads them.</summary>
public static class PackageLayout
{
    public const string FormatVersion = "twotower-package-4";
    public const string ManifestFile = "package.json";
    public const string CandidatesFile = "candidates.parquet";
    public const string IndexFile = "index.usearch";
    public const string HistoryFile = "history.parquet";
    /// <summary>history.parquet's columns: the customer's vocabulary id (vocab.customer_id.json) and the article's row of candidates.parquet.</summary>
    public const string HistoryCustomerColumn = "customer";
    public const string HistoryArticleRowColumn = "article_row";
    public const string CustomersFile = "customers.parquet";
    /// <summary>Evaluate's plots (*.png), copied for the model card of Serve's page.</summary>
    public const string PlotsFolder = "plots";
    public const string QueryTowerFile = "query_tower.onnx";
    public const string CandidateTowerFile = "candidate_tower.onnx";
    public const string OpenSearchFolder = "opensearch";

    /// <summary>
    /// Refuses a package of another format (an older TwoTower's, whose files this version would misread
    /// or fail on deep inside), naming both versions and the fix.
    /// </summary>
    public static void CheckFormat(string packageDir)
    {
        var path = Path.Combine(packageDir, ManifestFile);
        string? version;
        try
        {
            version = JsonNode.Parse(File.ReadAllText(path))?["format_version"]?.GetValue<string>();
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new PipelineError($"{path}: not a package manifest ({e.Message.Split('\n')[0]}); build the package again (--target=Package)");
        }
        if (version != FormatVersion)
            throw new PipelineError($"{path}: format_version {(version == null ? "missing" : $"'{version}'")}, and this version of TwoTower reads " +
                                    $"'{FormatVersion}': build the package again (--target=Package)");
    }
}
