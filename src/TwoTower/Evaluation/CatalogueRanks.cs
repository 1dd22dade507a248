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
        var trainArticles = train.Ints[features.CandidateId];
        var candidateRows = Catalogue.Rows(trainArticles);
        catalogue = candidateRows.Length;
        var dim = model.Candidate.OutputDim;
        var candidates = TwoTowerModel.Embed(model.Candidate, kernels, train, candidateRows);
        var everyRow = Enumerable.Range(0, val.RowCount).ToArray();
        var queries = TwoTowerModel.Embed(model.Query, kernels, val, everyRow);
        var positives = TwoTowerModel.Embed(model.Candidate, kernels, val, everyRow);
        var counts = new int[val.RowCount];
        if (model.RepeatBias is { } bias)
        {
            var history = HistoryRows(val, val.Ints[features.CandidateId], trainArticles, candidateRows, bias.Cols, out var positiveRows);
            CountWithRepeatBias(kernels, queries, candidates, catalogue, positives, dim, history, positiveRows, bias.Value, counts);
        }
        else
        {
            using var q = kernels.Upload(queries);
            using var c = kernels.Upload(candidates);
            using var p = kernels.Upload(positives);
            using var n = kernels.Upload(counts);
            kernels.CountScoresAbove(q, val.RowCount, c, catalogue, dim, p, n);
            kernels.CopyToHost(n, counts);
        }
        // A NaN or infinite positive score (count −1) is a miss, never a hit.
        return counts.Select(c => c < 0 ? RankMetrics.Miss : c + 1L).ToArray();
    }

    /// <summary>Each validation row's history as catalogue rows (−1: empty, or an article outside the catalogue), and its positive's catalogue row.</summary>
    static int[] HistoryRows(TrainingColumns val, int[] valArticles, int[] trainArticles, int[] candidateRows, int length, out int[] positiveRows)
    {
        var rowOfArticle = new Dictionary<int, int>();
        for (var i = 0; i < candidateRows.Length; i++)
            rowOfArticle[trainArticles[candidateRows[i]]] = i;
        positiveRows = valArticles.Select(a => rowOfArticle.GetValueOrDefault(a, -1)).ToArray();
        return val.Ints[PurchaseHistory.Column].Select(a => a < 0 ? -1 : rowOfArticle.GetValueOrDefault(a, -1)).ToArray();
    }

    /// <summary>
    /// The count with the repeat bias: the backend counts the dot products above each positive's
    /// biased score (a column appended to the vectors: 1 to the query, the positive's bias to the
    /// positive, 0 to every candidate, which leaves their dot products exact), then each history
    /// article's count is corrected to its biased score.
    /// </summary>
    static void CountWithRepeatBias(IKernels kernels, float[] queries, float[] candidates, int catalogue, float[] positives, int dim,
        int[] history, int[] positiveRows, float[] bias, int[] counts)
    {
        var rows = counts.Length;
        var length = bias.Length;
        var wide = dim + 1;
        float[] Widen(float[] vectors, int count, Func<int, float> last)
        {
            var result = new float[count * wide];
            for (var i = 0; i < count; i++)
            {
                vectors.AsSpan(i * dim, dim).CopyTo(result.AsSpan(i * wide));
                result[i * wide + dim] = last(i);
            }
            return result;
        }
        var positiveBias = Enumerable.Range(0, rows).Select(i => positiveRows[i] < 0 ? 0f
            : RepeatScores.BiasOf(positiveRows[i], history.AsSpan(i * length, length), bias)).ToArray();
        var wideQueries = Widen(queries, rows, _ => 1f);
        var widePositives = Widen(positives, rows, i => positiveBias[i]);
        using (var q = kernels.Upload(wideQueries))
        using (var c = kernels.Upload(Widen(candidates, catalogue, _ => 0f)))
        using (var p = kernels.Upload(widePositives))
        using (var n = kernels.Upload(counts))
        {
            kernels.CountScoresAbove(q, rows, c, catalogue, wide, p, n);
            kernels.CopyToHost(n, counts);
        }
        for (var i = 0; i < rows; i++)
        {
            if (counts[i] < 0)
                continue;
            var query = queries.AsSpan(i * dim, dim);
            var threshold = Kernels.Simd.SimdKernels.ScoreDot(wideQueries.AsSpan(i * wide, wide), widePositives.AsSpan(i * wide, wide));
            var slots = history.AsSpan(i * length, length);
            for (var s = 0; s < length; s++)
            {
                var row = slots[s];
                if (row < 0 || slots[..s].Contains(row))   // each history article once, with its slots' bias
                    continue;
                var dot = Kernels.Simd.SimdKernels.ScoreDot(query, candidates.AsSpan(row * dim, dim));
                counts[i] += (dot + RepeatScores.BiasOf(row, slots, bias) > threshold ? 1 : 0) - (dot > threshold ? 1 : 0);
            }
        }
    }
}
