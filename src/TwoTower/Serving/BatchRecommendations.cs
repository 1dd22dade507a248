using System.Text;
using TwoTower.Data;
using TwoTower.Kernels;
using TwoTower.Pipeline;

namespace TwoTower.Serving;

/// <summary>
/// Batch recommendations (RecommendAll): every customer's list from a package, computed in blocks
/// by <see cref="Recommender.RecommendMany"/> (so each list is the one the service returns with
/// exact scoring) and streamed to recommendations.parquet (customer_id, rank, article_id, score,
/// sources), and for H&amp;M data to the competition's submission.csv. Memory is bounded by one
/// block; both files appear under their names only once complete.
/// </summary>
public static class BatchRecommendations
{
    public const string RecommendationsFile = "recommendations.parquet";
    public const string SubmissionFile = "submission.csv";
    public const int BlockSize = 8192;

    /// <summary>What every list is asked with: as a request to the service would ask it (values: e.g. the month).</summary>
    public sealed record Request(int K, bool ModelOnly, bool ExcludeBought, IReadOnlyDictionary<string, string> Values);

    public sealed record Summary(int Customers, int UnknownCustomers, int ShortLists, string Source, long Rows);

    /// <summary>
    /// The customers' lists, a block at a time, in the customers' order. The next block is computed
    /// while the caller writes this one (one block in flight: memory stays bounded).
    /// </summary>
    public static IEnumerable<RecommendResult[]> Lists(Recommender recommender, IReadOnlyList<string> customers, Request request, IKernels kernels, int threads)
    {
        Task<RecommendResult[]> Compute(int start) => Task.Run(() => recommender.RecommendMany(customers.Skip(start).Take(BlockSize).ToArray(),
            request.Values, request.K, request.ExcludeBought, request.ModelOnly, kernels, threads));
        var next = customers.Count > 0 ? Compute(0) : null;
        for (var start = 0; next != null; start += BlockSize)
        {
            var block = next.GetAwaiter().GetResult();
            next = start + BlockSize < customers.Count ? Compute(start + BlockSize) : null;
            yield return block;
        }
    }

    /// <summary>
    /// Writes recommendations.parquet (and submission.csv when `articleSpelling` is given: each
    /// article id as the articles file writes it) into `folder`, reporting progress every 10 s.
    /// </summary>
    public static Summary Write(string folder, IEnumerable<RecommendResult[]> lists, int customerCount, Func<string, string>? articleSpelling,
        IPipelineLog log)
    {
        var (done, unknown, shortLists, rows, source) = (0, 0, 0, 0L, "none");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var lastReport = TimeSpan.Zero;
        void Count(RecommendResult[] block)
        {
            done += block.Length;
            unknown += block.Count(r => !r.KnownCustomer);
            rows += block.Sum(r => (long)r.Items.Count);
            if (block.Length > 0)
                source = block[0].Source;
            if (watch.Elapsed - lastReport > TimeSpan.FromSeconds(10) || done == customerCount)
            {
                lastReport = watch.Elapsed;
                log.Info($"  {done:N0}/{customerCount:N0} customers ({watch.Elapsed.TotalSeconds:F0} s)");
            }
        }
        IEnumerable<ColumnTable> Tables(TextWriter? submission)
        {
            yield return Table([]);   // the schema, even for no customers
            foreach (var block in lists)
            {
                Count(block);
                if (submission != null)
                {
                    foreach (var result in block)
                        submission.Write($"{CsvFile.Field(result.CustomerId)},{CsvFile.Field(string.Join(' ', result.Items.Take(SubmissionLength).Select(i => articleSpelling!(i.ArticleId))))}\n");
                    shortLists += block.Count(r => r.Items.Count < SubmissionLength);
                }
                yield return Table(block);
            }
        }
        var parquet = Path.Combine(folder, RecommendationsFile);
        if (articleSpelling == null)
            ColumnTable.WriteParquet(parquet, Tables(null));
        else
            ArtifactStore.WriteAtomic(Path.Combine(folder, SubmissionFile), stream =>
            {
                using var csv = new StreamWriter(stream, new UTF8Encoding(false), 1 << 20);
                csv.Write("customer_id,prediction\n");
                ColumnTable.WriteParquet(parquet, Tables(csv));
            });
        return new Summary(done, unknown, shortLists, source, rows);
    }

    /// <summary>The competition's list length (MAP@12).</summary>
    public const int SubmissionLength = 12;

    /// <summary>One block as rows: customer_id, rank (1 = best), article_id, score, sources (comma-separated).</summary>
    static ColumnTable Table(RecommendResult[] block)
    {
        var rows = block.Sum(r => r.Items.Count);
        var (customer, rank, article, score, sources) = (new string[rows], new int[rows], new string[rows], new float[rows], new string[rows]);
        var at = 0;
        foreach (var result in block)
        {
            for (var r = 0; r < result.Items.Count; r++, at++)
            {
                var item = result.Items[r];
                (customer[at], rank[at], article[at], score[at], sources[at]) = (result.CustomerId, r + 1, item.ArticleId, item.Score, string.Join(',', item.Sources));
            }
        }
        return new ColumnTable().Add("customer_id", customer).Add("rank", rank).Add("article_id", article).Add("score", score).Add("sources", sources);
    }
}
