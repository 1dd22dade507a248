using TwoTower.Kernels.Simd;

namespace TwoTower.Model;

/// <summary>
/// Scores with the repeat bias (<see cref="TwoTowerModel.RepeatBias"/>): score(q, a) = q·c_a + Σ bias[s]
/// over the slots s of the query's history that hold article a (one slot in a distinct history;
/// none: the dot product alone). The backends rank by the dot product alone; these helpers apply
/// the bias to their results exactly. A history is given as catalogue rows, −1 for an empty slot
/// (or an article outside the catalogue).
/// </summary>
public static class RepeatScores
{
    /// <summary>
    /// The top k by biased score, best first (ties to the lower row), from the dot-product top
    /// `top` (best first, at least k + <see cref="Articles"/>(history) of them where the catalogue
    /// has them) and the history. Exact: an article outside `top` and outside the history scores
    /// its dot product, below at least k of the non-history articles in `top`.
    /// </summary>
    public static List<(int Row, float Score)> Rerank(IEnumerable<(int Row, float Score)> top, ReadOnlySpan<int> history, ReadOnlySpan<float> bias,
        ReadOnlySpan<float> query, float[] embeddings, int dim, int k)
    {
        var scores = new Dictionary<int, float>();
        foreach (var (row, score) in top)
            scores[row] = score;
        for (var s = 0; s < history.Length; s++)
        {
            if (history[s] >= 0)
                scores[history[s]] = Score(query, embeddings, dim, history[s], history, bias).Score;
        }
        return scores.Select(p => (Row: p.Key, Score: p.Value)).OrderByDescending(p => p.Score).ThenBy(p => p.Row).Take(k).ToList();
    }

    /// <summary>The biased score of catalogue row `row` (embeddings row-major, `dim` wide) for the query and its history, and the bias's share; with no bias, the dot product and 0.</summary>
    public static ModelScore Score(ReadOnlySpan<float> query, float[] embeddings, int dim, int row, ReadOnlySpan<int> history, ReadOnlySpan<float> bias)
    {
        var dot = SimdKernels.ScoreDot(query, embeddings.AsSpan(row * dim, dim));
        if (bias.IsEmpty)
            return new ModelScore(dot, 0);
        var repeat = BiasOf(row, history, bias);
        return new ModelScore(dot + repeat, repeat);
    }

    /// <summary>The most distinct catalogue rows any of `rows` histories holds (row-major, `length` slots each; 0 for none): what a batch's top k must add.</summary>
    public static int MostArticles(int[] histories, int rows, int length) =>
        length == 0 ? 0 : Enumerable.Range(0, rows).Select(i => Articles(histories.AsSpan(i * length, length))).DefaultIfEmpty(0).Max();

    /// <summary>How many distinct catalogue rows a history holds: what a top k must add to rerank exactly.</summary>
    public static int Articles(ReadOnlySpan<int> history)
    {
        var count = 0;
        for (var s = 0; s < history.Length; s++)
        {
            if (history[s] >= 0 && !history[..s].Contains(history[s]))
                count++;
        }
        return count;
    }

    /// <summary>The sum of the biases of the slots that hold catalogue row `row` (in slot order), or 0.</summary>
    public static float BiasOf(int row, ReadOnlySpan<int> history, ReadOnlySpan<float> bias)
    {
        var sum = 0f;
        for (var s = 0; s < history.Length; s++)
        {
            if (history[s] == row)
                sum += bias[s];
        }
        return sum;
    }
}
