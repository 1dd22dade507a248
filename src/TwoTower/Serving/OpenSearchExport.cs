using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TwoTower.Config;
using TwoTower.Data;
using TwoTower.Pipeline;

namespace TwoTower.Serving;

/// <summary>
/// The OpenSearch k-NN copy of the index, for scale-out (the reference's next step):
/// mapping.json (index settings and mappings: knn_vector of the embedding's dimension, method hnsw,
/// engine faiss, space innerproduct, the same m / ef values) and bulk.ndjson (one index action and
/// one document per article: _id = article id, the item features, the vector), as the
/// OpenSearch k-NN plugin and _bulk API document them.
/// </summary>
public static class OpenSearchExport
{
    public const string MappingFile = "mapping.json";
    public const string BulkFile = "bulk.ndjson";

    public static JsonObject Mapping(PipelineConfig config, IEnumerable<(string Name, bool IsNumber)> fields, int dim)
    {
        var properties = new JsonObject
        {
            [config.Get(ConfigSchema.OpenSearch.Field)] = new JsonObject
            {
                ["type"] = "knn_vector",
                ["dimension"] = dim,
                ["method"] = new JsonObject
                {
                    ["name"] = "hnsw",
                    ["engine"] = "faiss",
                    ["space_type"] = "innerproduct",
                    ["parameters"] = new JsonObject
                    {
                        ["m"] = config.Get(ConfigSchema.Package.Connectivity),
                        ["ef_construction"] = config.Get(ConfigSchema.Package.ExpansionAdd),
                    },
                },
            },
        };
        foreach (var (name, isNumber) in fields)
            properties[name] = new JsonObject { ["type"] = isNumber ? "float" : "keyword" };
        return new JsonObject
        {
            ["settings"] = new JsonObject
            {
                ["index"] = new JsonObject { ["knn"] = true, ["knn.algo_param.ef_search"] = config.Get(ConfigSchema.Package.ExpansionSearch) },
            },
            ["mappings"] = new JsonObject { ["properties"] = properties },
        };
    }

    public static void Write(string dir, PipelineConfig config, ColumnTable candidates, string idColumn, int dim)
    {
        var featureColumns = candidates.Names.Where(n => n != idColumn && !IsEmbeddingColumn(n)).ToArray();
        var mapping = Mapping(config, featureColumns.Select(n => (n, candidates.Column(n) is float[])), dim);
        ArtifactStore.WriteAtomic(Path.Combine(dir, MappingFile), mapping.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var ids = candidates.Strings(idColumn);
        var vectors = Enumerable.Range(0, dim).Select(d => candidates.Floats($"e{d}")).ToArray();
        var index = config.Get(ConfigSchema.OpenSearch.Index);
        var field = config.Get(ConfigSchema.OpenSearch.Field);
        ArtifactStore.WriteAtomic(Path.Combine(dir, BulkFile), stream =>
        {
            using var w = new StreamWriter(stream, new UTF8Encoding(false));
            for (var i = 0; i < ids.Length; i++)
            {
                w.Write(new JsonObject { ["index"] = new JsonObject { ["_index"] = index, ["_id"] = ids[i] } }.ToJsonString());
                w.Write('\n');
                var doc = new JsonObject { [idColumn] = ids[i] };
                foreach (var c in featureColumns)
                    doc[c] = candidates.Column(c) is float[] f ? JsonValue.Create(f[i]) : JsonValue.Create(((string[])candidates.Column(c))[i]);
                doc[field] = new JsonArray(vectors.Select(v => (JsonNode?)JsonValue.Create(v[i])).ToArray());
                w.Write(doc.ToJsonString());
                w.Write('\n');
            }
        });
    }

    static bool IsEmbeddingColumn(string name) => name.Length > 1 && name[0] == 'e' && name[1..].All(char.IsDigit);

    /// <summary>
    /// Creates the index (PUT /&lt;index&gt; with mapping.json) and bulk-loads bulk.ndjson (POST /_bulk, in
    /// chunks), retrying failed requests with backoff. A cluster that cannot be reached is a clear
    /// error naming the URL.
    /// </summary>
    public static async Task PublishAsync(string packageDir, PipelineConfig config, IPipelineLog log, HttpClient? client = null,
        int documentsPerRequest = 1000)
    {
        var baseUrl = config.Get(ConfigSchema.OpenSearch.Url).TrimEnd('/');
        var index = config.Get(ConfigSchema.OpenSearch.Index);
        var retries = (int)config.Get(ConfigSchema.OpenSearch.Retries);
        var dir = Path.Combine(packageDir, "opensearch");
        if (!File.Exists(Path.Combine(dir, MappingFile)))
            throw new PipelineError($"no OpenSearch export in {dir} (run --target=Package first)");
        using var owned = client == null ? new HttpClient { Timeout = TimeSpan.FromSeconds(30) } : null;
        var http = client ?? owned!;

        async Task Send(HttpMethod method, string path, string body, string contentType)
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    using var request = new HttpRequestMessage(method, baseUrl + path) { Content = new StringContent(body, Encoding.UTF8, contentType) };
                    using var response = await http.SendAsync(request);
                    var text = await response.Content.ReadAsStringAsync();
                    if (response.IsSuccessStatusCode && !(path == "/_bulk" && JsonNode.Parse(text)?["errors"]?.GetValue<bool>() == true))
                        return;
                    if ((int)response.StatusCode is >= 400 and < 500 && response.StatusCode != HttpStatusCode.TooManyRequests)
                        throw new PipelineError($"OpenSearch refused {method} {baseUrl}{path}: {(int)response.StatusCode} {text}");
                    if (attempt >= retries)
                        throw new PipelineError($"OpenSearch {method} {baseUrl}{path} failed after {attempt} attempts: {(int)response.StatusCode} {text}");
                }
                catch (HttpRequestException e)
                {
                    if (attempt >= retries)
                        throw new PipelineError($"cannot reach the OpenSearch cluster at {baseUrl} ({e.Message}); set opensearch.url");
                }
                log.Warning($"OpenSearch {method} {path}: attempt {attempt} failed, retrying");
                await Task.Delay(TimeSpan.FromMilliseconds(200 * Math.Pow(2, attempt - 1)));
            }
        }

        await Send(HttpMethod.Put, "/" + index, await File.ReadAllTextAsync(Path.Combine(dir, MappingFile)), "application/json");
        var lines = await File.ReadAllLinesAsync(Path.Combine(dir, BulkFile));
        for (var start = 0; start < lines.Length; start += 2 * documentsPerRequest)
        {
            var chunk = lines.Skip(start).Take(2 * documentsPerRequest);
            await Send(HttpMethod.Post, "/_bulk", string.Join('\n', chunk) + "\n", "application/x-ndjson");
        }
        log.Info($"Published {lines.Length / 2:N0} articles to {baseUrl}/{index}");
    }
}
