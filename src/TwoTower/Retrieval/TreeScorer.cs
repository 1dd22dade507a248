using Microsoft.ML.Trainers.FastTree;

namespace TwoTower.Retrieval;

/// <summary>
/// A trained tree ensemble (ML.NET's view of the LightGBM model) flattened into arrays and scored
/// by walking each tree: score = bias + Σ_t weight_t · leaf_t(x), a node sending x left when
/// x[feature] ≤ threshold. Features are never NaN (<see cref="BlendFeatures.Absent"/> stands for a
/// missing value): NaN's path follows LightGBM's per-node default, which ML.NET does not expose. ML.NET's
/// scoring pipeline costs milliseconds per call, too much for one request's few hundred candidates;
/// this is microseconds. A test holds it equal to ML.NET's scores, NaN features included.
/// </summary>
public sealed class TreeScorer
{
    readonly int featureCount;
    readonly double bias;
    readonly double[] treeWeights;
    readonly int[] nodeStart, leafStart;
    readonly int[] left, right, feature;
    readonly float[] threshold;
    readonly double[] leafValue;

    public TreeScorer(RegressionTreeEnsemble ensemble, int featureCount)
    {
        this.featureCount = featureCount;
        bias = ensemble.Bias;
        treeWeights = ensemble.TreeWeights.ToArray();
        var trees = ensemble.Trees;
        if (trees.Any(t => t.CategoricalSplitFlags.Any(c => c)))
            throw new NotSupportedException("the blend's ranker has no categorical features, so its trees have no categorical splits");
        nodeStart = new int[trees.Count + 1];
        leafStart = new int[trees.Count + 1];
        for (var t = 0; t < trees.Count; t++)
        {
            nodeStart[t + 1] = nodeStart[t] + trees[t].NumberOfNodes;
            leafStart[t + 1] = leafStart[t] + trees[t].NumberOfLeaves;
        }
        left = trees.SelectMany(t => t.LeftChild).ToArray();
        right = trees.SelectMany(t => t.RightChild).ToArray();
        feature = trees.SelectMany(t => t.NumericalSplitFeatureIndexes).ToArray();
        threshold = trees.SelectMany(t => t.NumericalSplitThresholds).ToArray();
        leafValue = trees.SelectMany(t => t.LeafValues).ToArray();
    }

    /// <summary>One score per row of `features` (row-major, featureCount per row).</summary>
    public float[] Score(ReadOnlySpan<float> features)
    {
        var rows = features.Length / featureCount;
        var scores = new float[rows];
        for (var r = 0; r < rows; r++)
        {
            var x = features.Slice(r * featureCount, featureCount);
            var sum = bias;
            for (var t = 0; t < treeWeights.Length; t++)
                sum += treeWeights[t] * leafValue[leafStart[t] + Leaf(t, x)];
            scores[r] = (float)sum;
        }
        return scores;
    }

    /// <summary>The leaf x reaches in tree t; child indices below 0 are leaves (~leaf).</summary>
    int Leaf(int t, ReadOnlySpan<float> x)
    {
        if (nodeStart[t + 1] == nodeStart[t])
            return 0;   // a tree of a single leaf
        var node = 0;
        while (node >= 0)
        {
            var at = nodeStart[t] + node;
            node = x[feature[at]] <= threshold[at] ? left[at] : right[at];
        }
        return ~node;
    }
}
