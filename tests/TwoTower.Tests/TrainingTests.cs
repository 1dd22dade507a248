using TwoTower.Config;
using TwoTower.Kernels;
using TwoTower.Kernels.Simd;
using TwoTower.Model;

using TwoTower.Tests.Kernels;

namespace TwoTower.Tests;

public class TrainingTests
{
    /// <summary>A tiny encoded data set in the notebook's feature layout.</summary>
    internal static TrainingColumns TinyData(int rows, int seed = 1)
    {
        var rng = new Rng((ulong)seed);
        int[] Ids(int n) => Enumerable.Range(0, rows).Select(_ => 1 + rng.NextInt(n)).ToArray();
        float[] Floats() => Enumerable.Range(0, rows).Select(_ => (float)rng.NextGaussian()).ToArray();
        return new TrainingColumns(rows,
            new Dictionary<string, int[]>
            {
                ["customer_id"] = Ids(6), ["article_id"] = Ids(9), ["garment_group_name"] = Ids(3), ["index_group_name"] = Ids(2),
            },
            new Dictionary<string, float[]> { ["age"] = Floats(), ["month_sin"] = Floats(), ["month_cos"] = Floats() });
    }

    /// <summary>The tiny data with a history column of `length` slots: random articles (repeats allowed), some slots and some whole rows empty.</summary>
    internal static TrainingColumns WithHistory(TrainingColumns data, int length, int seed = 3)
    {
        var rng = new Rng((ulong)seed);
        var history = new int[data.RowCount * length];
        for (var r = 0; r < data.RowCount; r++)
        {
            var filled = r % 5 == 0 ? 0 : 1 + rng.NextInt(length);
            for (var j = 0; j < length; j++)
                history[r * length + j] = j < filled ? 1 + rng.NextInt(9) : -1;
        }
        return data with { Ints = new Dictionary<string, int[]>(data.Ints) { [Data.PurchaseHistory.Column] = history } };
    }

    internal static readonly Dictionary<string, int> TinyVocabulary = new()
    {
        ["customer_id"] = 6, ["article_id"] = 9, ["garment_group_name"] = 3, ["index_group_name"] = 2,
    };

    internal static PipelineConfig Config(params string[] overrides) => PipelineConfig.Parse("", "test", overrides);

    static TwoTowerModel NewModel(PipelineConfig config)
    {
        var model = TwoTowerModel.Create(config, TinyVocabulary);
        model.Initialize(config.Get(ConfigSchema.Seed));
        return model;
    }

    [Theory]
    [InlineData(true, 1.0, false)]
    [InlineData(false, 0.7, true)]
    public void GradientsMatchFloat64Reference(bool logQ, double temperature, bool accidentalHits)
    {
        var config = Config($"train.logq_correction={logQ}", $"train.temperature={temperature}",
            $"train.remove_accidental_hits={accidentalHits}", "train.batch_size=24");
        var data = TinyData(24);
        var model = NewModel(config);
        var reference = new ReferenceModel(model);
        using var trainer = new Trainer(model, new SimdKernels(2), TrainOptions.From(config), data, "article_id");
        var rows = Enumerable.Range(0, 24).ToArray();
        var loss = trainer.ComputeGradients(rows);
        var (expectedLoss, grads) = reference.LossAndGradients(data, rows, "article_id", logQ, temperature, accidentalHits);
        Assert.Equal(expectedLoss, loss, expectedLoss * 1e-5);
        foreach (var v in model.Variables)
            // Floor 1e-2: the last candidate bias has a true gradient of 0 (softmax rows sum to 1),
            // reached through cancellation, so a purely relative comparison would measure noise.
            Assert.True(Reference.MaxRelativeError(trainer.Gradient(v), grads[v.Name], floor: 1e-2) < 1e-4, v.Name);
    }

    [Fact]
    public void Float64ReferenceGradientsMatchFiniteDifferences()
    {
        var config = Config("train.batch_size=16");
        var data = TinyData(16, seed: 3);
        var reference = new ReferenceModel(NewModel(config));
        var rows = Enumerable.Range(0, 16).ToArray();
        double Loss() => reference.LossAndGradients(data, rows, "article_id", true, 1, false).Loss;
        var (_, grads) = reference.LossAndGradients(data, rows, "article_id", true, 1, false);
        const double h = 1e-6;
        foreach (var (name, values) in reference.Params)
        {
            // Every element of small variables; for the embeddings, the rows this batch uses.
            for (var i = 0; i < values.Length; i++)
            {
                if (grads[name][i] == 0 && name.Contains("embedding"))
                    continue;
                var saved = values[i];
                values[i] = saved + h;
                var up = Loss();
                values[i] = saved - h;
                var down = Loss();
                values[i] = saved;
                var numeric = (up - down) / (2 * h);
                Assert.True(Math.Abs(numeric - grads[name][i]) <= 1e-5 * Math.Max(1, Math.Abs(numeric)),
                    $"{name}[{i}]: finite difference {numeric}, analytic {grads[name][i]}");
            }
        }
    }
    /// <summary>History pooled with the candidate tower's article table (its gradient is the two towers' sum) or a table of its own.</summary>
    [Theory]
    [InlineData(true, "mean")]
    [InlineData(false, "recency")]
    [InlineData(true, "recency")]
    [InlineData(true, "mean", true)]
    [InlineData(false, "recency", true)]
    public void GradientsWithHistoryMatchFloat64Reference(bool share, string pooling, bool repeatBias = false)
    {
        var config = Config("train.batch_size=24", "features.query.history.length=4", $"features.query.history.pooling={pooling}",
            $"features.query.history.share_embedding={share}", $"features.query.history.repeat_bias={repeatBias}");
        var data = WithHistory(TinyData(24), 4);
        var model = NewModel(config);
        Assert.Equal(share ? 0 : 1, model.Variables.Count(v => v.Name == "query/embedding/history"));
        Assert.Equal(repeatBias, model.RepeatBias != null);
        var reference = new ReferenceModel(model);
        using var trainer = new Trainer(model, new SimdKernels(2), TrainOptions.From(config), data, "article_id");
        var rows = Enumerable.Range(0, 24).ToArray();
        var loss = trainer.ComputeGradients(rows);
        var (expectedLoss, grads) = reference.LossAndGradients(data, rows, "article_id", true, 1.0, false);
        Assert.Equal(expectedLoss, loss, expectedLoss * 1e-5);
        if (repeatBias)   // the batch's histories hold some of its articles: every slot has entries
            Assert.All(grads[TwoTowerModel.RepeatBiasName], g => Assert.True(Math.Abs(g) > 1e-3));
        foreach (var v in model.Variables)
        {
            // Embedding gradients are defined on the rows the batch touched: compare those.
            var touched = TouchedRows(v.Name, share, data, rows);
            var actual = trainer.Gradient(v).Where((_, i) => touched == null || touched.Contains(i / v.Cols)).ToArray();
            var expected = grads[v.Name].Where((_, i) => touched == null || touched.Contains(i / v.Cols)).ToArray();
            Assert.True(Reference.MaxRelativeError(actual, expected, floor: 1e-2) < 1e-4, v.Name);
        }
    }

    /// <summary>The rows of an embedding a batch touches (null for a dense variable): its column's ids, and the history's where it embeds them.</summary>
    static HashSet<int>? TouchedRows(string variable, bool sharedHistory, TrainingColumns data, int[] rows)
    {
        if (!variable.Contains("/embedding/"))
            return null;
        var column = variable[(variable.LastIndexOf('/') + 1)..];
        var touched = new HashSet<int>();
        if (data.Ints.TryGetValue(Data.PurchaseHistory.Column, out var history) && (column == Data.PurchaseHistory.Column || sharedHistory && column == "article_id"))
        {
            var length = history.Length / data.RowCount;
            touched.UnionWith(rows.SelectMany(r => history.AsSpan(r * length, length).ToArray()).Where(id => id >= 0));
        }
        if (column != Data.PurchaseHistory.Column)
            touched.UnionWith(rows.Select(r => data.Ints[column][r]));
        return touched;
    }

    [Fact]
    public void ASharedHistoryTableNeedsTheCandidateTowerToEmbedItsId()
    {
        var config = Config("features.query.history.length=4", "features.candidate.embedded=[]", "features.candidate.one_hot=[article_id]");
        var error = Assert.Throws<PipelineError>(() => TwoTowerModel.Create(config, TinyVocabulary));
        Assert.Contains("share_embedding: true needs the candidate tower to embed 'article_id'", error.Message);
        // A table of its own needs nothing from the candidate tower.
        Assert.Contains(TwoTowerModel.Create(Config("features.query.history.length=4", "features.query.history.share_embedding=false",
            "features.candidate.embedded=[]", "features.candidate.one_hot=[article_id]"), TinyVocabulary).Variables, v => v.Name == "query/embedding/history");
    }

    /// <summary>
    /// Six AdamW steps against float64 dense training: rows a step does not touch still move with
    /// their momentum (the lazy update replays those steps). With a shared history table, a row
    /// touched only through a customer's history must step too.
    /// </summary>
    [Theory]
    [InlineData(0, false)]
    [InlineData(3, true)]
    [InlineData(3, false)]
    [InlineData(3, true, true)]
    public void GoldenLossesMatchFloat64ReferenceTraining(int historyLength, bool share, bool repeatBias = false)
    {
        var config = Config("train.batch_size=10", "train.learning_rate=0.05", $"features.query.history.length={historyLength}",
            $"features.query.history.share_embedding={share}", $"features.query.history.repeat_bias={repeatBias}");
        var data = TinyData(20, seed: 5);
        if (historyLength > 0)
            data = WithHistory(data, historyLength);
        var model = NewModel(config);
        var reference = new ReferenceModel(model);
        var options = TrainOptions.From(config);
        using var trainer = new Trainer(model, new SimdKernels(2), options, data, "article_id");
        var m = reference.Params.ToDictionary(p => p.Key, p => new double[p.Value.Length]);
        var v = reference.Params.ToDictionary(p => p.Key, p => new double[p.Value.Length]);
        for (var step = 1; step <= 6; step++)
        {
            // Alternating halves: rows of one half are untouched for a step and must still move with their momentum.
            var rows = Enumerable.Range(step % 2 * 10, 10).ToArray();
            var (expected, grads) = reference.LossAndGradients(data, rows, "article_id", true, 1, false);
            var actual = trainer.TrainStep(rows);
            // float32 against float64 through six Adam steps at lr 0.05: the history tower drifts to 2e-4 by step 6.
            Assert.True(Math.Abs(expected - actual) <= Math.Abs(expected) * 1e-3, $"step {step}: loss {actual}, float64 {expected}");
            var lrT = options.LearningRate * Math.Sqrt(1 - Math.Pow(options.Beta2, step)) / (1 - Math.Pow(options.Beta1, step));
            foreach (var (name, w) in reference.Params)
            {
                var isEmbedding = name.Contains("embedding");
                var width = isEmbedding ? 16 : 1;
                var touched = TouchedRows(name, share, data, rows);
                for (var i = 0; i < w.Length; i++)
                {
                    if (touched == null || touched.Contains(i / width))
                        w[i] -= options.WeightDecay * w[i];
                    var g = grads[name][i];
                    m[name][i] = options.Beta1 * m[name][i] + (1 - options.Beta1) * g;
                    v[name][i] = options.Beta2 * v[name][i] + (1 - options.Beta2) * g * g;
                    w[i] -= lrT * m[name][i] / (Math.Sqrt(v[name][i]) + options.Epsilon);
                }
            }
            // The lazily updated tables, brought up to this step, must hold the dense update's weights: a row a step missed is off by
            // about a learning rate. (Dense weights are not compared: Adam moves one with a near-zero gradient by ±lr on rounding noise.)
            trainer.CatchUp();
            foreach (var variable in model.Variables.Where(v => v.IsEmbedding))
            {
                var worst = reference.Params[variable.Name].Zip(variable.Value).Max(p => Math.Abs(p.First - p.Second));
                Assert.True(worst < 2e-3, $"step {step}: {variable.Name} differs by {worst}");
            }
        }
    }

    static float[][] Train(PipelineConfig config, TrainingColumns data, int epochs)
    {
        var model = NewModel(config);
        using var trainer = new Trainer(model, new SimdKernels(config.Threads), TrainOptions.From(config), data, "article_id");
        for (var e = 1; e <= epochs; e++)
            trainer.RunEpoch(e);
        return model.Variables.Select(v => v.Value.ToArray()).ToArray();
    }

    [Theory]
    [InlineData("batches")]
    [InlineData("rows")]
    public void SameSeedAndThreadsGiveIdenticalWeights(string shuffle)
    {
        var config = Config("train.batch_size=64", "threads=2", $"train.shuffle={shuffle}");
        var data = TinyData(1000);
        var a = Train(config, data, 2);
        var b = Train(config, data, 2);
        Assert.Equal(a.Length, b.Length);
        for (var i = 0; i < a.Length; i++)
            Assert.Equal(a[i], b[i]);
        var other = Train(Config("train.batch_size=64", "threads=2", $"train.shuffle={shuffle}", "seed=7"), data, 2);
        Assert.NotEqual(a[0], other[0]);
    }

    /// <summary>
    /// Query-id dropout: with every id dropped only the unknown customer's row learns (the others keep
    /// their initial values exactly); with a share dropped the run is still a function of the seed.
    /// </summary>
    [Fact]
    public void QueryIdDropoutTrainsTheUnknownRowAndIsSeeded()
    {
        var data = TinyData(640);
        var all = NewModel(Config("train.batch_size=64", "train.query_id_dropout=1"));
        var initial = all.Query.Inputs[0].Embedding!.Value.ToArray();
        using (var trainer = new Trainer(all, new SimdKernels(2), TrainOptions.From(Config("train.batch_size=64", "train.query_id_dropout=1")), data, "article_id"))
            trainer.RunEpoch(1);
        var customers = all.Query.Inputs[0].Embedding!.Value;
        Assert.Equal(initial[16..], customers[16..]);
        Assert.NotEqual(initial[..16], customers[..16]);

        var config = Config("train.batch_size=64", "threads=2", "train.query_id_dropout=0.3");
        var (a, b) = (Train(config, data, 2), Train(config, data, 2));
        for (var i = 0; i < a.Length; i++)
            Assert.Equal(a[i], b[i]);
        Assert.NotEqual(Train(Config("train.batch_size=64", "threads=2"), data, 2)[0], a[0]);
        Assert.Equal(data.Ints["customer_id"], TinyData(640).Ints["customer_id"]);   // the caller's column is untouched
    }

    [Fact]
    public void ResumingFromACheckpointEndsWithTheSameWeights()
    {
        var config = Config("train.batch_size=64", "threads=2");
        var data = TinyData(1000);
        var straight = Train(config, data, 3);

        var path = Path.Combine(Path.GetTempPath(), $"twotower-ckpt-{Guid.NewGuid():N}.safetensors");
        try
        {
            var first = NewModel(config);
            using var trainer = new Trainer(first, new SimdKernels(2), TrainOptions.From(config), data, "article_id");
            trainer.RunEpoch(1);
            first.SaveCheckpoint(path, new Dictionary<string, string> { ["step"] = trainer.Step.ToString() });

            var resumed = TwoTowerModel.Create(config, TinyVocabulary);
            var meta = resumed.LoadCheckpoint(path);
            using var next = new Trainer(resumed, new SimdKernels(2), TrainOptions.From(config), data, "article_id", int.Parse(meta["step"]));
            next.RunEpoch(2);
            next.RunEpoch(3);
            var weights = resumed.Variables.Select(v => v.Value).ToArray();
            for (var i = 0; i < straight.Length; i++)
                Assert.Equal(straight[i], weights[i]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void OneHotDepthIsVocabularyPlusOneByDefaultAndVocabularyInNotebookMode()
    {
        // Candidate input: article embedding (16) + garment one-hot + index one-hot.
        Assert.Equal(16 + 4 + 3, NewModel(Config()).Candidate.InputDim);
        Assert.Equal(16 + 3 + 2, NewModel(Config("model.one_hot_depth=notebook")).Candidate.InputDim);
    }

    [Fact]
    public void LossFallsOverEpochsOnLearnableData()
    {
        var config = Config("train.batch_size=32");
        var data = TinyData(2000, seed: 9);
        // Planted structure: each customer buys one article.
        for (var r = 0; r < data.RowCount; r++)
            data.Ints["article_id"][r] = data.Ints["customer_id"][r];
        var model = NewModel(config);
        using var trainer = new Trainer(model, new SimdKernels(2), TrainOptions.From(config), data, "article_id");
        var losses = Enumerable.Range(1, 3).Select(e => trainer.RunEpoch(e).LossPerExample).ToArray();
        Assert.True(losses[1] < losses[0] && losses[2] < losses[1], string.Join(", ", losses));
    }

    [Fact]
    public void DivergingLossStopsWithEpochAndStep()
    {
        var config = Config("train.batch_size=32", "train.learning_rate=1e30");
        var data = TinyData(100);
        using var trainer = new Trainer(NewModel(config), new SimdKernels(1), TrainOptions.From(config), data, "article_id");
        var error = Assert.Throws<PipelineError>(() => trainer.RunEpoch(1));
        Assert.Contains("at epoch 1, step ", error.Message);
        Assert.Contains("train.learning_rate", error.Message);
    }

    [Fact]
    public void EarlyStoppingPicksTheFirstBestEpochAndStopsAfterPatience()
    {
        Model.EpochStats Epoch(int e, double? hit) =>
            new(e, 0, 0, 0, 0) { ValidationHitAt = hit is null ? null : new Dictionary<int, double> { [10] = hit.Value } };
        var stopping = new EarlyStopping("hit@10", 2);
        List<Model.EpochStats> history = [Epoch(1, 0.1), Epoch(2, 0.3), Epoch(3, null), Epoch(4, 0.3)];
        Assert.Equal(2, stopping.BestEpoch(history));
        Assert.False(stopping.ShouldStop(history));
        history.Add(Epoch(5, 0.2));
        Assert.True(stopping.ShouldStop(history));
        Assert.Throws<PipelineError>(() => Config("train.early_stopping_metric=hit@7", "train.validate_every=1"));
        Assert.Throws<PipelineError>(() => Config("train.early_stopping_metric=mrr"));
    }
}
