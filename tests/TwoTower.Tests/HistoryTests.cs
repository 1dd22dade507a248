using TwoTower.Data;
using TwoTower.Retrieval;

namespace TwoTower.Tests;

/// <summary>The query tower's history input as Encode builds it: hand-made cases and a brute-force definition.</summary>
public class HistoryTests
{
    [Fact]
    public void ARowSeesEarlierDaysOnlyMostRecentFirstDistinctAndTruncated()
    {
        // Customer 1 buys a, b (day 10), a (day 11), c, d (day 12), e (day 13); customer 2 buys f (day 11).
        int[] customers = [1, 1, 1, 2, 1, 1, 1];
        int[] articles = [10, 20, 10, 60, 30, 40, 50];
        int[] days = [10, 10, 11, 11, 12, 12, 13];
        var rows = PurchaseHistory.Build(customers, articles, days, customerCount: 3, length: 3);
        var atEnd = Purchases.From(customers, articles, days, 3, 61, int.MaxValue).LatestArticles([0, 1, 2], 3);
        int[] Row(int r) => rows[(r * 3)..(r * 3 + 3)];
        Assert.Equal([-1, -1, -1], Row(0));   // nothing before day 10, not even the same day's b
        Assert.Equal([-1, -1, -1], Row(1));
        Assert.Equal([20, 10, -1], Row(2));   // day 10: b is the later row, so the more recent
        Assert.Equal([-1, -1, -1], Row(3));   // customer 2 never sees customer 1
        Assert.Equal([10, 20, -1], Row(4));   // a bought again on day 11 moves to the front, once
        Assert.Equal([10, 20, -1], Row(5));   // same day as row 4: not row 4's c
        Assert.Equal([40, 30, 10], Row(6));   // truncated to 3: b drops out
        Assert.Equal([50, 40, 30], atEnd[3..6]);   // customer 1 after all their purchases
        Assert.Equal([60, -1, -1], atEnd[6..9]);
        Assert.Equal([-1, -1, -1], atEnd[0..3]);   // customer 0 (unknown) has none

        // Not distinct: every purchase in its slot, a bought again on day 11 twice.
        var purchases = PurchaseHistory.Build(customers, articles, days, customerCount: 3, length: 3, distinct: false);
        Assert.Equal([10, 20, 10], purchases[(4 * 3)..(4 * 3 + 3)]);
        Assert.Equal([40, 30, 10], purchases[(6 * 3)..(6 * 3 + 3)]);
    }

    /// <summary>
    /// Random purchases against the definition written as a query: for each row, the customer's rows
    /// of earlier days, latest first, distinct (or every purchase, repeats kept), the first L.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void BuildMatchesABruteForceDefinition(bool distinct)
    {
        var rng = new Rng(17);
        const int n = 600, length = 4;
        var customers = Enumerable.Range(0, n).Select(_ => rng.NextInt(25)).ToArray();
        var articles = Enumerable.Range(0, n).Select(_ => rng.NextInt(12)).ToArray();
        var days = Enumerable.Range(0, n).Select(_ => 100 + rng.NextInt(30)).ToArray();
        var rows = PurchaseHistory.Build(customers, articles, days, 25, length, distinct);
        var atEnd = Purchases.From(customers, articles, days, 25, 12, int.MaxValue).LatestArticles([.. Enumerable.Range(0, 25)], length, distinct);
        int[] Expected(IEnumerable<int> earlier)
        {
            var latestFirst = earlier.OrderByDescending(r => days[r]).ThenByDescending(r => r).Select(r => articles[r]);
            return [.. (distinct ? latestFirst.Distinct() : latestFirst).Take(length)];
        }
        for (var r = 0; r < n; r++)
        {
            var expected = Expected(Enumerable.Range(0, n).Where(o => customers[o] == customers[r] && days[o] < days[r]));
            Assert.Equal(expected.Concat(Enumerable.Repeat(-1, length - expected.Length)), rows[(r * length)..((r + 1) * length)]);
        }
        for (var c = 0; c < 25; c++)
        {
            var expected = Expected(Enumerable.Range(0, n).Where(o => customers[o] == c));
            // What validation rows, Blend and serving see: Latest over the customer's purchases in time order.
            Assert.Equal(expected.Concat(Enumerable.Repeat(-1, length - expected.Length)), atEnd[(c * length)..((c + 1) * length)]);
        }
    }

    [Fact]
    public void SlotColumnsRoundTripThroughATable()
    {
        int[] flat = [1, 2, -1, 3, -1, -1];
        var table = new ColumnTable().Add("customer_id", new[] { 5, 6 });
        PurchaseHistory.AddTo(table, flat, 3);
        Assert.Equal([2, -1], table.Ints("history_1"));
        Assert.Equal(flat, PurchaseHistory.Flatten(table));
        Assert.Null(PurchaseHistory.Flatten(new ColumnTable().Add("customer_id", new[] { 5 })));
    }
}
