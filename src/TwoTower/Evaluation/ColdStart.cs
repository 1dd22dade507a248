using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Model;

namespace TwoTower.Evaluation;

/// <summary>
/// Cold start, with history features: validation customers the training data never saw, served
/// with what else they bought as the request's history (the Recommender's "history": a new
/// customer's cart or first orders). Each of their validation rows is a target; its history is the
/// customer's other validation purchases up to the target's day (same day included: the rest of the
/// basket), never the target's own article; rows with nothing else bought are left out. The same
/// target rows are scored by the model with that history, the model without it (the
/// out-of-vocabulary customer alone) and all-time popularity, each ranking the catalogue without
/// the history's articles: they are the basket, never a target here, and a shop leaves them out
/// (the Recommender's exclude_bought does the same with a request's history).
/// </summary>
public static class ColdStart
{
    /// <param name="customerCodes">Each validation row's customer as Ingest coded it (distinct for customers the vocabulary does not know).</param>
    public static IReadOnlyList<MethodScores> Evaluate(TwoTowerModel model, IKernels kernels, TrainingColumns train, TrainingColumns val,
        int[] customerCodes, FeatureSet features, long[] popularity, IReadOnlyList<int> ks, out int customerCount)
    {
        var length = features.History!.Length;
        var days = val.Ints[DataFiles.DayColumn];
        var articles = val.Ints[features.CandidateId];
        var targets = new List<int>();
        var bags = new List<int>();
        var bag = new int[length];
        customerCount = 0;
        foreach (var rows in Enumerable.Range(0, val.RowCount).Where(r => val.Ints[features.QueryId][r] == Vocabulary.OutOfVocabulary)
                     .GroupBy(r => customerCodes[r]).Select(g => g.OrderBy(r => days[r]).ThenBy(r => r).ToArray()))
        {
            var counted = false;
            foreach (var target in rows)
            {
                // In time order, the last row the most recent, as a request would pass them; articles the catalogue does not know are skipped.
                var known = rows.Where(o => days[o] <= days[target] && articles[o] != articles[target] && articles[o] != Vocabulary.OutOfVocabulary)
                    .Select(o => articles[o]).ToArray();
                if (known.Length == 0)
                    continue;
                PurchaseHistory.Latest(known, bag, features.History!.Distinct);
                targets.Add(target);
                bags.AddRange(bag);
                counted = true;
            }
            customerCount += counted ? 1 : 0;
        }
        int[] basket = [.. bags];
        var targetRows = val.Subset(targets);   // their own history: an unknown customer's, empty
        var withBasket = targetRows with { Ints = new Dictionary<string, int[]>(targetRows.Ints) { [PurchaseHistory.Column] = basket } };
        var withHistory = CatalogueRanks.Compute(model, kernels, train, withBasket, features, out _, basket, length);
        var noHistory = CatalogueRanks.Compute(model, kernels, train, targetRows, features, out _, basket, length);
        var popular = targets.Select((target, t) =>
        {
            var rank = popularity[articles[target]];
            var others = basket.AsSpan(t * length, length).ToArray().Where(a => a >= 0 && a != articles[target]).Distinct();
            return rank == RankMetrics.Miss ? rank : rank - others.Count(a => popularity[a] < rank);
        }).ToArray();
        return
        [
            new("model, their other purchases as history", RankMetrics.Compute(withHistory, ks)),
            new("model, no history", RankMetrics.Compute(noHistory, ks)),
            new("popularity", RankMetrics.Compute(popular, ks)),
        ];
    }
}
