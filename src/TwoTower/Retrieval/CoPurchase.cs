namespace TwoTower.Retrieval;

/// <summary>
/// Item-to-item neighbours from pair counts: article j is a neighbour of i when customers bought both
/// within `windowDays` of each other (at most <see cref="PairsPerPurchase"/> purchases apart). Two
/// weightings of the count n(i, j) of such customers: co_purchase's P(j | i) = n(i, j) / buyers(i),
/// and item_knn's cosine of the two articles' customer columns, n(i, j) / √(buyers(i) · buyers(j))
/// (with the window the whole history). Each article keeps its top `neighbours` by weight.
/// Counted article by article from an index of each article's purchases: for a purchase of i, the
/// customer's purchases up to 30 before and after it are its partners, each customer counted once
/// per pair (a stamp of (i, customer) per partner). Memory is the index, 8 bytes a purchase, and
/// one dense counter per thread; articles are counted in parallel, each list independent of the others.
/// </summary>
public static class CoPurchase
{
    /// <summary>Later purchases paired with each purchase, at most: a customer with thousands of rows in a window would otherwise cost n².</summary>
    public const int PairsPerPurchase = 30;

    public enum Weighting { Conditional, Cosine }

    public static ItemNeighbours Neighbours(Purchases purchases, int windowDays, int neighbours, Weighting weighting)
    {
        var buyers = Buyers(purchases);
        var (start, rows, customerOfRow) = PurchaseIndex(purchases);
        var lists = new (int Article, float Weight)[purchases.ArticleCount][];
        Parallel.For(0, purchases.ArticleCount, () => new Counter(purchases.ArticleCount), (i, _, counter) =>
        {
            if (start[i + 1] > start[i])
                lists[i] = counter.Top(purchases, i, rows.AsSpan(start[i], start[i + 1] - start[i]), customerOfRow, windowDays, neighbours, buyers, weighting);
            return counter;
        }, _ => { });
        return ItemNeighbours.FromLists(lists);
    }

    /// <summary>Distinct customers per article.</summary>
    public static int[] Buyers(Purchases purchases)
    {
        var buyers = new int[purchases.ArticleCount];
        var seen = new HashSet<int>();
        for (var c = 0; c < purchases.CustomerCount; c++)
        {
            seen.Clear();
            foreach (var a in purchases.ArticlesOf(c))
            {
                if (seen.Add(a))
                    buyers[a]++;
            }
        }
        return buyers;
    }

    /// <summary>Each article's purchases as rows of purchases.Articles (rows[start[i]..start[i + 1]], in row order), and each row's customer.</summary>
    static (int[] Start, int[] Rows, int[] CustomerOfRow) PurchaseIndex(Purchases purchases)
    {
        var start = new int[purchases.ArticleCount + 1];
        foreach (var a in purchases.Articles)
            start[a + 1]++;
        for (var a = 0; a < purchases.ArticleCount; a++)
            start[a + 1] += start[a];
        var next = start[..^1];
        var rows = new int[purchases.RowCount];
        for (var r = 0; r < purchases.RowCount; r++)
            rows[next[purchases.Articles[r]]++] = r;
        var customerOfRow = new int[purchases.RowCount];
        for (var c = 0; c < purchases.CustomerCount; c++)
            customerOfRow.AsSpan(purchases.Start[c], purchases.Start[c + 1] - purchases.Start[c]).Fill(c);
        return (start, rows, customerOfRow);
    }

    /// <summary>One thread's counts of partners, reused from article to article (only the touched slots are reset).</summary>
    sealed class Counter(int articleCount)
    {
        readonly int[] customers = new int[articleCount];
        readonly long[] lastPair = Enumerable.Repeat(-1L, articleCount).ToArray();
        readonly List<int> touched = [];

        /// <summary>Article i's `neighbours` partners j of the highest weight (then the higher count, then the lower j).</summary>
        public (int Article, float Weight)[] Top(Purchases p, int i, ReadOnlySpan<int> rowsOfI, int[] customerOfRow, int windowDays, int neighbours,
            int[] buyers, Weighting weighting)
        {
            touched.Clear();
            foreach (var r in rowsOfI)
            {
                var c = customerOfRow[r];
                var pair = ((long)i << 32) | (uint)c;
                var (first, end) = (Math.Max(p.Start[c], r - PairsPerPurchase), Math.Min(p.Start[c + 1], r + PairsPerPurchase + 1));
                for (var q = first; q < end; q++)
                {
                    var j = p.Articles[q];
                    if (j == i || Math.Abs((long)p.Days[q] - p.Days[r]) > windowDays || lastPair[j] == pair)
                        continue;
                    lastPair[j] = pair;   // this customer counts once for (i, j)
                    if (customers[j]++ == 0)
                        touched.Add(j);
                }
            }
            float Weight(int j) => weighting == Weighting.Conditional
                ? (float)customers[j] / buyers[i]
                : (float)(customers[j] / Math.Sqrt((double)buyers[i] * buyers[j]));
            var top = touched.Select(j => (J: j, Customers: customers[j], Weight: Weight(j))).OrderByDescending(x => x.Weight).ThenByDescending(x => x.Customers)
                .ThenBy(x => x.J).Take(neighbours).Select(x => (x.J, x.Weight)).ToArray();
            foreach (var j in touched)
                customers[j] = 0;
            return top;
        }
    }
}
