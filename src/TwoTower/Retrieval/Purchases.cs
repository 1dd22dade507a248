namespace TwoTower.Retrieval;

/// <summary>
/// Training purchases as the candidate sources read them, up to (not including) a cut-off day:
/// each customer's (article, day) rows in day order, in one compressed array (customer c's rows
/// are Articles[Start[c]..Start[c+1]]). Customers and articles are vocabulary ids (0 = unknown).
/// </summary>
public sealed class Purchases
{
    public int CustomerCount { get; }
    public int ArticleCount { get; }
    /// <summary>The first day not included: sources score "as of" this day.</summary>
    public int AsOfDay { get; }
    public int[] Start { get; }
    public int[] Articles { get; }
    public int[] Days { get; }

    Purchases(int customerCount, int articleCount, int asOfDay, int[] start, int[] articles, int[] days) =>
        (CustomerCount, ArticleCount, AsOfDay, Start, Articles, Days) = (customerCount, articleCount, asOfDay, start, articles, days);

    public int RowCount => Articles.Length;

    /// <summary>The rows with day &lt; asOfDay, grouped by customer; within a customer by day, then row order (a stable sort).</summary>
    public static Purchases From(int[] customers, int[] articles, int[] days, int customerCount, int articleCount, int asOfDay)
    {
        var start = new int[customerCount + 1];
        for (var r = 0; r < customers.Length; r++)
        {
            if (days[r] < asOfDay)
                start[customers[r] + 1]++;
        }
        for (var c = 0; c < customerCount; c++)
            start[c + 1] += start[c];
        var next = start[..^1].ToArray();
        var outArticles = new int[start[^1]];
        var outDays = new int[start[^1]];
        for (var r = 0; r < customers.Length; r++)
        {
            if (days[r] >= asOfDay)
                continue;
            var at = next[customers[r]]++;
            outArticles[at] = articles[r];
            outDays[at] = days[r];
        }
        for (var c = 0; c < customerCount; c++)
            SortByDay(outArticles.AsSpan(start[c], start[c + 1] - start[c]), outDays.AsSpan(start[c], start[c + 1] - start[c]));
        return new Purchases(customerCount, articleCount, asOfDay, start, outArticles, outDays);
    }

    /// <summary>Insertion sort by day, stable: a customer's rows are few and nearly in order already.</summary>
    static void SortByDay(Span<int> articles, Span<int> days)
    {
        for (var i = 1; i < days.Length; i++)
        {
            var (a, d) = (articles[i], days[i]);
            var j = i - 1;
            while (j >= 0 && days[j] > d)
            {
                articles[j + 1] = articles[j];
                days[j + 1] = days[j];
                j--;
            }
            articles[j + 1] = a;
            days[j + 1] = d;
        }
    }

    /// <summary>
    /// Each listed customer's last `length` distinct articles (or, not distinct, purchases) before the
    /// as-of day, most recent first, −1 padded (customers × length): the query tower's history input as of that day.
    /// </summary>
    public int[] LatestArticles(IReadOnlyList<int> customers, int length, bool distinct = true)
    {
        var history = new int[(long)customers.Count * length];
        for (var i = 0; i < customers.Count; i++)
            Data.PurchaseHistory.Latest(ArticlesOf(customers[i]), history.AsSpan(i * length, length), distinct);
        return history;
    }

    public ReadOnlySpan<int> ArticlesOf(int customer) => Articles.AsSpan(Start[customer], Start[customer + 1] - Start[customer]);
    public ReadOnlySpan<int> DaysOf(int customer) => Days.AsSpan(Start[customer], Start[customer + 1] - Start[customer]);

    /// <summary>0.5^(age / halfLife): the weight of a purchase `age` days before the as-of day.</summary>
    public static double Decay(int ageDays, double halfLifeDays) => Math.Pow(0.5, ageDays / halfLifeDays);
}
