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
    /// <summary>
    /// Rank of each validation positive among the distinct training articles (TFRS FactorizedTopK).
    /// excluded (row-major, `excludedLength` article ids per row, −1 padded): articles left out of
    /// that row's ranking (Evaluate's cold start leaves out the articles a request passes).
    /// </summary>
    public static long[] Compute(TwoTowerModel model, IKernels kernels, TrainingColumns train, TrainingColumns val,
        FeatureSet features, out int catalogue, int[]? excluded = null, int excludedLength = 0)
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
        var rowOfArticle = new Dictionary<int, int>();
        for (var i = 0; i < candidateRows.Length; i++)
            rowOfArticle[trainArticles[candidateRows[i]]] = i;
        int[] CatalogueRows(IEnumerable<int> articles) => articles.Select(a => a < 0 ? -1 : rowOfArticle.GetValueOrDefault(a, -1)).ToArray();
        var positiveRows = CatalogueRows(val.Ints[features.CandidateId]);

        // The biased score of catalogue row j for row i (the dot product alone without a repeat bias).
        var bias = model.RepeatBias?.Value ?? [];
        var history = bias.Length == 0 ? [] : CatalogueRows(val.Ints[PurchaseHistory.Column]);
        ReadOnlySpan<int> HistoryOf(int i) => history.AsSpan(i * bias.Length, bias.Length);
        float Score(int i, int j) => RepeatScores.Score(queries.AsSpan(i * dim, dim), candidates, dim, j, HistoryOf(i), bias).Score;
        var thresholds = new float[val.RowCount];
        if (bias.Length > 0)
            CountAboveBiasedPositives(kernels, queries, candidates, catalogue, positives, dim, positiveRows, history, bias, counts, thresholds);
        else
        {
            using (var q = kernels.Upload(queries))
            using (var c = kernels.Upload(candidates))
            using (var p = kernels.Upload(positives))
            using (var n = kernels.Upload(counts))
            {
                kernels.CountScoresAbove(q, val.RowCount, c, catalogue, dim, p, n);
                kernels.CopyToHost(n, counts);
            }
            if (excluded != null)
            {
                for (var i = 0; i < val.RowCount; i++)
                    thresholds[i] = Kernels.Simd.SimdKernels.ScoreDot(queries.AsSpan(i * dim, dim), positives.AsSpan(i * dim, dim));
            }
        }
        if (excluded != null)
        {
            var excludedRows = CatalogueRows(excluded);
            for (var i = 0; i < val.RowCount; i++)
            {
                var rows = excludedRows.AsSpan(i * excludedLength, excludedLength);
                for (var s = 0; s < excludedLength; s++)
                {
                    var j = rows[s];
                    if (counts[i] >= 0 && j >= 0 && j != positiveRows[i] && !rows[..s].Contains(j) && Score(i, j) > thresholds[i])
                        counts[i]--;
                }
            }
        }
        // A NaN or infinite positive score (count −1) is a miss, never a hit.
        return counts.Select(c => c < 0 ? RankMetrics.Miss : c + 1L).ToArray();
    }

    /// <summary>
    /// The count with the repeat bias: the backend counts the dot products above each positive's
    /// biased score (a column appended to the vectors: 1 to the query, the positive's bias to the
    /// positive, 0 to every candidate, which leaves their dot products exact), then each history
    /// article's count is corrected to its biased score. history: each row's slots as catalogue rows
    /// (bias.Length per row). Writes each row's threshold, the positive's biased score.
    /// </summary>
    static void CountAboveBiasedPositives(IKernels kernels, float[] queries, float[] candidates, int catalogue, float[] positives, int dim,
        int[] positiveRows, int[] history, float[] bias, int[] counts, float[] thresholds)
    {
        var rows = counts.Length;
        var wide = dim + 1;
        ReadOnlySpan<int> HistoryOf(int i) => history.AsSpan(i * bias.Length, bias.Length);
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
        var wideQueries = Widen(queries, rows, _ => 1f);
        var widePositives = Widen(positives, rows, i => positiveRows[i] < 0 ? 0f : RepeatScores.BiasOf(positiveRows[i], HistoryOf(i), bias));
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
            thresholds[i] = Kernels.Simd.SimdKernels.ScoreDot(wideQueries.AsSpan(i * wide, wide), widePositives.AsSpan(i * wide, wide));
            if (counts[i] < 0)
                continue;
            var query = queries.AsSpan(i * dim, dim);
            var slots = HistoryOf(i);
            for (var s = 0; s < slots.Length; s++)
            {
                var row = slots[s];
                if (row < 0 || slots[..s].Contains(row))   // each history article once, with its slots' bias
                    continue;
                var dot = Kernels.Simd.SimdKernels.ScoreDot(query, candidates.AsSpan(row * dim, dim));
                counts[i] += (dot + RepeatScores.BiasOf(row, slots, bias) > thresholds[i] ? 1 : 0) - (dot > thresholds[i] ? 1 : 0);
            }
        }
    }
}
