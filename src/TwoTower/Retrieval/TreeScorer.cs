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
    /// <summary>A split: x goes to Left when x[Feature] ≤ Threshold, else to Right; a child below 0 is leaf ~child.</summary>
    readonly record struct Node(int Feature, float Threshold, int Left, int Right);

    readonly int featureCount;
    readonly double bias;
    readonly int[] nodeStart, leafStart;
    readonly Node[] nodes;
    /// <summary>weight_t · leaf value: what a row adds for the leaf it reaches (the same double a row-by-row walk computes).</summary>
    readonly double[] weightedLeaf;

    public TreeScorer(RegressionTreeEnsemble ensemble, int featureCount)
    {
        this.featureCount = featureCount;
        bias = ensemble.Bias;
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
        nodes = trees.SelectMany(t => Enumerable.Range(0, t.NumberOfNodes).Select(n =>
            new Node(t.NumericalSplitFeatureIndexes[n], t.NumericalSplitThresholds[n], t.LeftChild[n], t.RightChild[n]))).ToArray();
        weightedLeaf = trees.SelectMany((t, i) => t.LeafValues.Select(v => ensemble.TreeWeights[i] * v)).ToArray();
    }

    public int TreeCount => nodeStart.Length - 1;

    /// <summary>One score per row of `features` (row-major, featureCount per row), by all the trees.</summary>
    public float[] Score(ReadOnlySpan<float> features) => ScoresByTreeCount(features, TreeCount)[^1].Scores;

    /// <summary>
    /// The rows' scores by the first `step`, 2·`step`, … trees and by all of them: the ensemble's
    /// prefixes, as boosting built them (choosing how many trees to keep). Tree by tree over all rows,
    /// so that one tree's nodes stay in cache while every row walks it; each row still adds its trees
    /// in order, so the sums are those of a row-by-row walk. (A branch-free walk of each tree's full
    /// depth, four rows interleaved, was 2.4× slower: LightGBM's leaf-wise trees are 11 splits deep
    /// at most but 7 on average.)
    /// </summary>
    public List<(int Trees, float[] Scores)> ScoresByTreeCount(ReadOnlySpan<float> features, int step)
    {
        var rows = features.Length / featureCount;
        var sums = new double[rows];
        sums.AsSpan().Fill(bias);
        var prefixes = new List<(int, float[])>();
        for (var t = 0; t < TreeCount; t++)
        {
            var leaves = weightedLeaf.AsSpan(leafStart[t], leafStart[t + 1] - leafStart[t]);
            if (nodeStart[t + 1] == nodeStart[t])
            {
                for (var r = 0; r < rows; r++)
                    sums[r] += leaves[0];   // a tree of a single leaf
            }
            else
            {
                var tree = nodes.AsSpan(nodeStart[t], nodeStart[t + 1] - nodeStart[t]);
                for (var r = 0; r < rows; r++)
                    sums[r] += leaves[Leaf(tree, features.Slice(r * featureCount, featureCount))];
            }
            if ((t + 1) % step == 0 || t + 1 == TreeCount)
                prefixes.Add((t + 1, sums.Select(x => (float)x).ToArray()));
        }
        if (TreeCount == 0)
            prefixes.Add((0, sums.Select(x => (float)x).ToArray()));
        return prefixes;
    }

    /// <summary>The leaf x reaches in a tree of at least one split.</summary>
    static int Leaf(ReadOnlySpan<Node> tree, ReadOnlySpan<float> x)
    {
        var node = 0;
        while (node >= 0)
        {
            ref readonly var split = ref tree[node];
            node = x[split.Feature] <= split.Threshold ? split.Left : split.Right;
        }
        return ~node;
    }
}
