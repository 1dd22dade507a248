using TwoTower.Kernels;

namespace TwoTower.Retrieval;

/// <summary>
/// A score per article, summed for one customer at a time, and its top `count`: best first, ties to
/// the lower article id (the one order every source uses). Dense and reused: an article's slot is
/// live when its stamp is the current round's, so starting a customer clears nothing and a request
/// allocates nothing (a dictionary per customer was most of a served request's source time).
/// Not thread-safe: <see cref="ForThread"/> gives each thread its own.
/// </summary>
public sealed class ArticleScores(int articleCount)
{
    [ThreadStatic] static ArticleScores? perThread;

    double[] scores = new double[articleCount];
    int[] stamps = new int[articleCount];
    int[] touched = new int[Math.Min(articleCount, 1024)];
    int touchedCount, round = 1;
    double[] heapScores = [];
    int[] heapArticles = [];

    /// <summary>This thread's table, emptied, for articles 0..articleCount−1: valid until the next call on this thread (each user reads it out before another starts).</summary>
    public static ArticleScores ForThread(int articleCount)
    {
        var table = perThread;
        if (table == null || table.scores.Length < articleCount)
            perThread = table = new ArticleScores(articleCount);
        table.Clear();
        return table;
    }

    public int Count => touchedCount;

    public void Clear()
    {
        touchedCount = 0;
        if (++round == int.MaxValue)
        {
            Array.Clear(stamps);
            round = 1;
        }
    }

    /// <summary>score[article] += value (an article not yet scored this round starts from 0).</summary>
    public void Add(int article, double value)
    {
        if (stamps[article] != round)
        {
            stamps[article] = round;
            scores[article] = 0;
            if (touchedCount == touched.Length)
                Array.Resize(ref touched, touched.Length * 2);
            touched[touchedCount++] = article;
        }
        scores[article] += value;
    }

    /// <summary>The article's sum this round (0 when nothing was added).</summary>
    public double Get(int article) => stamps[article] == round ? scores[article] : 0;

    /// <summary>Clears `output` and fills it with the `count` best articles, best first, their scores as floats.</summary>
    public void Top(int count, List<Candidate> output)
    {
        output.Clear();
        var keep = Math.Min(count, touchedCount);
        if (keep <= 0)
            return;
        if (heapScores.Length < keep)
            (heapScores, heapArticles) = (new double[keep], new int[keep]);
        var heap = heapScores.AsSpan(0, keep);
        var articles = heapArticles.AsSpan(0, keep);
        var size = 0;
        for (var i = 0; i < touchedCount; i++)
        {
            var (article, score) = (touched[i], scores[touched[i]]);
            if (size < keep)
                TopKHeap.Push(heap, articles, size++, score, article);
            else if (TopKHeap.BeatsRoot<double>(heap, articles, score, article))
                TopKHeap.ReplaceRoot(heap, articles, size, score, article);
        }
        TopKHeap.SortBestFirst(heap, articles, size);
        for (var i = 0; i < size; i++)
            output.Add(new Candidate(articles[i], (float)heap[i]));
    }
}
