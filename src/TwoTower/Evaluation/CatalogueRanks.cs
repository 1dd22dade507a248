using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Model;

namespace TwoTower.Evaluation;

/// <summary>
/// The model's rank of each validation positive among the whole catalogue (every distinct training
/// article), as TFRS FactorizedTopK counts it: used by Evaluate, by Train's per-epoch validation,
/// and by Package's candidate set.
/// </summary>
public static class CatalogueRanks
{
    /// <summary>Rank of each validation positive among the distinct training articles (TFRS FactorizedTopK).</summary>
    public static long[] Compute(TwoTowerModel model, IKernels kernels, TrainingColumns train, TrainingColumns val,
        FeatureSet features, out int catalogue)
    {
        var candidateRows = Catalogue.Rows(train.Ints[features.CandidateId]);
        catalogue = candidateRows.Length;
        var dim = model.Candidate.OutputDim;
        var candidates = TwoTowerModel.Embed(model.Candidate, kernels, train, candidateRows);
        var everyRow = Enumerable.Range(0, val.RowCount).ToArray();
        var queries = TwoTowerModel.Embed(model.Query, kernels, val, everyRow);
        var positives = TwoTowerModel.Embed(model.Candidate, kernels, val, everyRow);
        var counts = new int[val.RowCount];
        using (var q = kernels.Upload(queries))
        using (var c = kernels.Upload(candidates))
        using (var p = kernels.Upload(positives))
        using (var n = kernels.Upload(counts))
        {
            kernels.CountScoresAbove(q, val.RowCount, c, catalogue, dim, p, n);
            kernels.CopyToHost(n, counts);
        }
        // A NaN or infinite positive score (count −1) is a miss, never a hit.
        return counts.Select(c => c < 0 ? RankMetrics.Miss : c + 1L).ToArray();
    }
}
