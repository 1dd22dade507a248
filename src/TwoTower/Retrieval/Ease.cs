using MathNet.Numerics.LinearAlgebra;

namespace TwoTower.Retrieval;

/// <summary>
/// ease (Steck 2019, "Embarrassingly Shallow Autoencoders"): item-item weights in closed form from
/// the binary customer × article matrix X of the training purchases, over its `articles` most bought
/// articles (the Gram matrix is articles²: 8·N² bytes each for it, its factor and the inverse):
/// B = I − P·diag(1/diag P), P = (XᵀX + λI)⁻¹, so B_ii = 0 and B_ij = −P_ij / P_jj. A customer's
/// score of j is x_u·B = Σ over their distinct articles i of B_ij; each article keeps its
/// `neighbours` largest weights (all N−1 of them reproduce x_u·B exactly). Articles outside the N
/// are neither scored nor proposed (the popularity source covers them in the blend).
/// The factorisation is MathNet.Numerics' Cholesky (G + λI is symmetric positive definite).
/// </summary>
public static class Ease
{
    /// <summary>B from the Gram matrix XᵀX: zero diagonal, −P_ij / P_jj elsewhere.</summary>
    public static Matrix<double> Weights(Matrix<double> gram, double lambda)
    {
        var n = gram.RowCount;
        var regularized = gram + Matrix<double>.Build.DenseDiagonal(n, n, lambda);
        var p = regularized.Cholesky().Solve(Matrix<double>.Build.DenseIdentity(n));
        var diagonal = p.Diagonal().ToArray();
        p.MapIndexedInplace((i, j, v) => i == j ? 0 : -v / diagonal[j]);
        return p;
    }

    /// <summary>The N articles bought by the most customers (ties to the lower id), in that order.</summary>
    public static int[] MostBought(Purchases purchases, int articles)
    {
        var buyers = CoPurchase.Buyers(purchases);
        return Enumerable.Range(0, buyers.Length).Where(a => buyers[a] > 0).OrderByDescending(a => buyers[a]).ThenBy(a => a).Take(articles).ToArray();
    }

    /// <summary>XᵀX over the given articles (index k for articles[k]): how many customers bought both (the diagonal: each article's buyers).</summary>
    public static Matrix<double> Gram(Purchases purchases, int[] articles)
    {
        var index = new Dictionary<int, int>();
        for (var k = 0; k < articles.Length; k++)
            index[articles[k]] = k;
        var n = articles.Length;
        var gram = new double[n * n];
        var row = new List<int>();
        for (var c = 0; c < purchases.CustomerCount; c++)
        {
            row.Clear();
            foreach (var a in purchases.ArticlesOf(c))
            {
                if (index.TryGetValue(a, out var k) && !row.Contains(k))
                    row.Add(k);
            }
            foreach (var x in row)
            foreach (var y in row)
                gram[x * n + y]++;
        }
        return Matrix<double>.Build.Dense(n, n, gram);   // symmetric: row- and column-major read the same
    }

    public static ItemNeighbours Neighbours(Purchases purchases, int articles, double lambda, int neighbours)
    {
        var kept = MostBought(purchases, articles);
        var lists = new (int Article, float Weight)[purchases.ArticleCount][];
        if (kept.Length == 0)
            return ItemNeighbours.FromLists(lists);   // nothing bought yet: no neighbours (MathNet cannot factor a 0 × 0 matrix)
        var weights = Weights(Gram(purchases, kept), lambda);
        for (var i = 0; i < kept.Length; i++)
        {
            var row = weights.Row(i);
            lists[kept[i]] = Enumerable.Range(0, kept.Length).Where(j => j != i).OrderByDescending(j => row[j]).ThenBy(j => kept[j]).Take(neighbours)
                .Select(j => (kept[j], (float)row[j])).ToArray();
        }
        return ItemNeighbours.FromLists(lists);
    }
}
