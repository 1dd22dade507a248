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
/// out-of-vocabulary customer alone) and all-time popularity.
/// </summary>
public static class ColdStart
{
    /// <param name="customerCodes">Each validation row's customer as Ingest coded it (distinct for customers the vocabulary does not know).</param>
    public static IReadOnlyList<MethodScores> Evaluate(TwoTowerModel model, IKernels kernels, TrainingColumns train, TrainingColumns val,
        int[] customerCodes, FeatureSet features, long[] modelRanks, long[] popularityRanks, IReadOnlyList<int> ks, out int customerCount)
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
        var withHistory = Rows(val, targets, [.. bags]);
        var ranks = CatalogueRanks.Compute(model, kernels, train, withHistory, features, out _);
        return
        [
            new("model, their other purchases as history", RankMetrics.Compute(ranks, ks)),
            new("model, no history", RankMetrics.Compute([.. targets.Select(r => modelRanks[r])], ks)),
            new("popularity", RankMetrics.Compute([.. targets.Select(r => popularityRanks[r])], ks)),
        ];
    }

    /// <summary>The listed rows of every column, with the given history (row-major) in place of theirs.</summary>
    static TrainingColumns Rows(TrainingColumns data, List<int> rows, int[] history)
    {
        var ints = data.Ints.Where(c => c.Key != PurchaseHistory.Column).ToDictionary(c => c.Key, c => rows.Select(r => c.Value[r]).ToArray());
        ints[PurchaseHistory.Column] = history;
        var floats = data.Floats.ToDictionary(c => c.Key, c => rows.Select(r => c.Value[r]).ToArray());
        return new TrainingColumns(rows.Count, ints, floats);
    }
}
