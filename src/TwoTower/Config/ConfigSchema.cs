namespace TwoTower.Config;

public enum ConfigType { Int, Float, Bool, String, Choice, StringList, IntList }

/// <summary>One key of pipeline.yaml: its type, default and allowed range.</summary>
public sealed record ConfigKey(
    string Name,
    ConfigType Type,
    object Default,
    string Doc,
    double Min = double.NegativeInfinity,
    double Max = double.PositiveInfinity,
    bool MinExclusive = false,
    string[]? Choices = null)
{
    public string Section => Name.Contains('.') ? Name[..Name.LastIndexOf('.')] : "";

    public string Expected => Type switch
    {
        ConfigType.Int => "an integer" + RangeText,
        ConfigType.Float => "a number" + RangeText,
        ConfigType.Bool => "true or false",
        ConfigType.String => "a string",
        ConfigType.Choice => "one of: " + string.Join(", ", Choices!),
        ConfigType.StringList => "a list of strings, e.g. [a, b]",
        ConfigType.IntList => "a list of integers" + RangeText + ", e.g. [16, 16]",
        _ => Type.ToString(),
    };

    string RangeText =>
        (double.IsNegativeInfinity(Min), double.IsPositiveInfinity(Max)) switch
        {
            (true, true) => "",
            (false, true) => MinExclusive ? $" > {Min}" : $" >= {Min}",
            (true, false) => $" <= {Max}",
            _ => MinExclusive ? $" in ({Min}, {Max}]" : $" in [{Min}, {Max}]",
        };
}

/// <summary>A key with the type of its value: <c>config.Get(ConfigSchema.Train.LearningRate)</c>. Its name is written once, in its schema entry.</summary>
public sealed record Setting<T>(ConfigKey Key)
{
    public string Name => Key.Name;
}

/// <summary>
/// Every key a run can depend on. pipeline.yaml lists them all with comments; a test keeps its
/// values equal to these defaults. Keys a stage reads are named by prefix in that stage.
/// </summary>
public static class ConfigSchema
{
    public static readonly Setting<long> Seed =
        new(new ConfigKey("seed", ConfigType.Int, 42L, "seed of every random choice in Train", Min: 0));
    public static readonly Setting<long> Threads =
        new(new ConfigKey("threads", ConfigType.Int, 0L, "worker threads for the CPU backend; 0 = all cores", Min: 0));
    public static readonly Setting<string> Accelerator =
        new(new ConfigKey("accelerator", ConfigType.Choice, "auto",
            "auto: CUDA if present, else an OpenCL GPU, else the SIMD CPU backend; cpu: SIMD; ilgpu-cpu: ILGPU's CPU accelerator (slow, for checks); cuda; opencl",
            Choices: ["auto", "cpu", "ilgpu-cpu", "cuda", "opencl"]));

    public static class Data
    {
        public static readonly Setting<string> Format =
            new(new ConfigKey("data.format", ConfigType.Choice, "notebook_csv",
                "notebook_csv: train_df.csv/val_df.csv as the notebook reads them; hm_raw: H&M's three raw files (raw.*)",
                Choices: ["notebook_csv", "hm_raw"]));
        public static readonly Setting<string> Dir =
            new(new ConfigKey("data.dir", ConfigType.String, "data/synthetic", "folder holding the input files"));
        public static readonly Setting<string> TrainFile =
            new(new ConfigKey("data.train_file", ConfigType.String, "train_df.csv", "training transactions"));
        public static readonly Setting<string> ValFile =
            new(new ConfigKey("data.val_file", ConfigType.String, "val_df.csv", "validation transactions"));
        public static readonly Setting<string> Split =
            new(new ConfigKey("data.split", ConfigType.Choice, "given",
                "given: the validation set is the configured one | tuning: the last data.tuning_days of the training data are the validation set and the configured validation data is never read (what Sweep's trials run on)",
                Choices: ["given", "tuning"]));
        public static readonly Setting<long> TuningDays =
            new(new ConfigKey("data.tuning_days", ConfigType.Int, 7L, "data.split: tuning: how many of the last training days are the tuning set", Min: 1));
        public static readonly Setting<string> Synthesize =
            new(new ConfigKey("data.synthesize", ConfigType.Choice, "auto",
                "auto: generate built-in data when the files are absent; never: require them",
                Choices: ["auto", "never"]));
        public static readonly Setting<string> MissingNumeric =
            new(new ConfigKey("data.missing_numeric", ConfigType.Choice, "impute_mean",
                "empty numeric cell: impute_mean (warn with a count) or error",
                Choices: ["impute_mean", "error"]));
        public static readonly Setting<string> NegativeNumeric =
            new(new ConfigKey("data.negative_numeric", ConfigType.Choice, "warn",
                "a negative value in a normalized numeric feature (an age of -3): warn (with a count), error, or clip (to 0, with a count)",
                Choices: ["warn", "error", "clip"]));
    }

    public static class Raw
    {
        public static readonly Setting<string> TransactionsFile =
            new(new ConfigKey("raw.transactions_file", ConfigType.String, "transactions_train.csv", "hm_raw: t_dat, customer_id, article_id, …"));
        public static readonly Setting<string> CustomersFile =
            new(new ConfigKey("raw.customers_file", ConfigType.String, "customers.csv", "hm_raw: customer_id, age, …"));
        public static readonly Setting<string> ArticlesFile =
            new(new ConfigKey("raw.articles_file", ConfigType.String, "articles.csv", "hm_raw: article_id, garment_group_name, …"));
        public static readonly Setting<long> ArticleIdDigits =
            new(new ConfigKey("raw.article_id_digits", ConfigType.Int, 10L,
                "zero-pad all-digit article ids to this many digits (H&M's CSV drops the leading 0); 0 = as written", Min: 0, Max: 64));
        public static readonly Setting<string> Split =
            new(new ConfigKey("raw.split", ConfigType.Choice, "time", "time: the last raw.validation_days days are validation; random: seeded row split",
                Choices: ["time", "random"]));
        public static readonly Setting<long> ValidationDays =
            new(new ConfigKey("raw.validation_days", ConfigType.Int, 7L, "time split: days of validation at the end (H&M's test week)", Min: 1));
        public static readonly Setting<long> ValidationOffsetDays =
            new(new ConfigKey("raw.validation_offset_days", ConfigType.Int, 0L,
                "time split: the validation days end this many days before the last day (a backtest on an earlier week); the days after them are held out, unused", Min: 0));
        public static readonly Setting<double> ValidationFraction =
            new(new ConfigKey("raw.validation_fraction", ConfigType.Float, 0.1, "random split: share of rows for validation", Min: 0, MinExclusive: true, Max: 0.9));
        public static readonly Setting<double> TestFraction =
            new(new ConfigKey("raw.test_fraction", ConfigType.Float, 0.1, "random split: share of rows held out as test (not used)", Min: 0, Max: 0.9));
        public static readonly Setting<long> SplitSeed =
            new(new ConfigKey("raw.split_seed", ConfigType.Int, 0L, "random split seed", Min: 0));
        public static readonly Setting<long> SampleCustomers =
            new(new ConfigKey("raw.sample_customers", ConfigType.Int, 0L, "keep only this many customers, drawn with raw.sample_seed; 0 = all", Min: 0));
        public static readonly Setting<long> SampleSeed =
            new(new ConfigKey("raw.sample_seed", ConfigType.Int, 0L, "customer sampling seed", Min: 0));
        public static readonly Setting<bool> DedupePairs =
            new(new ConfigKey("raw.dedupe_pairs", ConfigType.Bool, false, "keep only the first row of each (customer, article) pair in each split"));
        public static readonly Setting<string> MissingCustomer =
            new(new ConfigKey("raw.missing_customer", ConfigType.Choice, "keep",
                "a transaction whose customer is not in the customers file: keep (empty customer features) or drop", Choices: ["keep", "drop"]));
        public static readonly Setting<string> MissingArticle =
            new(new ConfigKey("raw.missing_article", ConfigType.Choice, "keep",
                "a transaction whose article is not in the articles file: keep (empty article features) or drop", Choices: ["keep", "drop"]));
    }

    public static class Synth
    {
        public static readonly Setting<double> Scale =
            new(new ConfigKey("synth.scale", ConfigType.Float, 1.0,
                "1 = notebook scale (410k rows); 77.56 = full H&M (31.8M rows)", Min: 0, MinExclusive: true, Max: 200));
        public static readonly Setting<long> Seed =
            new(new ConfigKey("synth.seed", ConfigType.Int, 2022L, "seed of the built-in data generator", Min: 0));
        public static readonly Setting<double> ValFraction =
            new(new ConfigKey("synth.val_fraction", ConfigType.Float, 0.11,
                "validation rows as a fraction of training rows", Min: 0, MinExclusive: true, Max: 1));
    }

    public static class FeaturesQuery
    {
        public static readonly Setting<string> Id =
            new(new ConfigKey("features.query.id", ConfigType.String, "customer_id", "the query identity column"));
        public static readonly Setting<IReadOnlyList<string>> Embedded =
            new(new ConfigKey("features.query.embedded", ConfigType.StringList, new[] { "customer_id" }, "categorical, embedded"));
        public static readonly Setting<IReadOnlyList<string>> OneHot =
            new(new ConfigKey("features.query.one_hot", ConfigType.StringList, Array.Empty<string>(), "categorical, one-hot"));
        public static readonly Setting<IReadOnlyList<string>> Numeric =
            new(new ConfigKey("features.query.numeric", ConfigType.StringList, new[] { "age" }, "numeric, normalized"));
        public static readonly Setting<IReadOnlyList<string>> Raw =
            new(new ConfigKey("features.query.raw", ConfigType.StringList, new[] { "month_sin", "month_cos" }, "numeric, used as is"));
    }

    /// <summary>The customer's recent purchases as a query input (off by default: the notebook's tower has none).</summary>
    public static class FeaturesHistory
    {
        public static readonly Setting<long> Length =
            new(new ConfigKey("features.query.history.length", ConfigType.Int, 0L,
                "the customer's last N distinct purchased articles before the row's day, embedded and pooled; 0 = no history input", Min: 0, Max: 200));
        public static readonly Setting<string> Pooling =
            new(new ConfigKey("features.query.history.pooling", ConfigType.Choice, "mean",
                "mean: the plain mean of the embedded articles | recency: weight 1/(1+i) for the i-th most recent", Choices: ["mean", "recency"]));
        public static readonly Setting<bool> ShareEmbedding =
            new(new ConfigKey("features.query.history.share_embedding", ConfigType.Bool, true,
                "embed history with the candidate tower's table of its id column (true) or a table of the query tower's own"));
        public static readonly Setting<bool> Distinct =
            new(new ConfigKey("features.query.history.distinct", ConfigType.Bool, true,
                "the last N distinct articles (true), or the last N purchases with an article bought again in each of its slots (false)"));
        public static readonly Setting<bool> RepeatBias =
            new(new ConfigKey("features.query.history.repeat_bias", ConfigType.Bool, false,
                "add a learned bias per history slot to the score of the articles in the customer's history (a repeat-purchase term); false: the score is the towers' dot product alone"));
    }

    public static class FeaturesCandidate
    {
        public static readonly Setting<string> Id =
            new(new ConfigKey("features.candidate.id", ConfigType.String, "article_id", "the candidate identity column"));
        public static readonly Setting<IReadOnlyList<string>> Embedded =
            new(new ConfigKey("features.candidate.embedded", ConfigType.StringList, new[] { "article_id" }, "categorical, embedded"));
        public static readonly Setting<IReadOnlyList<string>> OneHot =
            new(new ConfigKey("features.candidate.one_hot", ConfigType.StringList, new[] { "garment_group_name", "index_group_name" },
                "categorical, one-hot"));
        public static readonly Setting<IReadOnlyList<string>> Numeric =
            new(new ConfigKey("features.candidate.numeric", ConfigType.StringList, Array.Empty<string>(), "numeric, normalized"));
        public static readonly Setting<IReadOnlyList<string>> Raw =
            new(new ConfigKey("features.candidate.raw", ConfigType.StringList, Array.Empty<string>(), "numeric, used as is"));
    }

    public static class Normalize
    {
        public static readonly Setting<double> Epsilon =
            new(new ConfigKey("normalize.epsilon", ConfigType.Float, 1e-7, "floor of the standard deviation", Min: 0, MinExclusive: true));
    }

    public static class Model
    {
        public static readonly Setting<long> EmbeddingDim =
            new(new ConfigKey("model.embedding_dim", ConfigType.Int, 16L, "width of every id embedding", Min: 1, Max: 4096));
        public static readonly Setting<IReadOnlyList<long>> QueryLayers =
            new(new ConfigKey("model.query_layers", ConfigType.IntList, new long[] { 16, 16 },
                "Dense sizes of the query tower; relu between, none after the last", Min: 1, Max: 4096));
        public static readonly Setting<IReadOnlyList<long>> CandidateLayers =
            new(new ConfigKey("model.candidate_layers", ConfigType.IntList, new long[] { 16, 16 },
                "Dense sizes of the candidate tower", Min: 1, Max: 4096));
        public static readonly Setting<string> OneHotDepth =
            new(new ConfigKey("model.one_hot_depth", ConfigType.Choice, "vocab_plus_oov",
                "vocab_plus_oov: n+1 columns (departure 1); notebook: n columns, the last category all zeros",
                Choices: ["vocab_plus_oov", "notebook"]));
    }

    public static class Train
    {
        public static readonly Setting<long> Epochs =
            new(new ConfigKey("train.epochs", ConfigType.Int, 5L, "passes over the training rows", Min: 1, Max: 100000));
        public static readonly Setting<long> BatchSize =
            new(new ConfigKey("train.batch_size", ConfigType.Int, 2048L, "rows per batch (in-batch negatives)", Min: 2, Max: 1 << 20));
        public static readonly Setting<double> LearningRate =
            new(new ConfigKey("train.learning_rate", ConfigType.Float, 0.01, "AdamW learning rate", Min: 0, MinExclusive: true));
        public static readonly Setting<double> WeightDecay =
            new(new ConfigKey("train.weight_decay", ConfigType.Float, 0.001, "AdamW decoupled weight decay", Min: 0));
        public static readonly Setting<string> WeightDecayConvention =
            new(new ConfigKey("train.weight_decay_convention", ConfigType.Choice, "tfa",
                "tfa: w -= wd*w (the notebook's TensorFlow-Addons AdamW); keras: w -= lr*wd*w",
                Choices: ["tfa", "keras"]));
        public static readonly Setting<double> Beta1 =
            new(new ConfigKey("train.beta1", ConfigType.Float, 0.9, "Adam beta1", Min: 0, Max: 0.999999));
        public static readonly Setting<double> Beta2 =
            new(new ConfigKey("train.beta2", ConfigType.Float, 0.999, "Adam beta2", Min: 0, Max: 0.999999999));
        public static readonly Setting<double> Epsilon =
            new(new ConfigKey("train.epsilon", ConfigType.Float, 1e-7, "Adam epsilon", Min: 0, MinExclusive: true));
        public static readonly Setting<string> Shuffle =
            new(new ConfigKey("train.shuffle", ConfigType.Choice, "batches",
                "batches: fixed batches in file order, batch order shuffled each epoch (the notebook); rows: rows reshuffled each epoch",
                Choices: ["batches", "rows"]));
        public static readonly Setting<double> Temperature =
            new(new ConfigKey("train.temperature", ConfigType.Float, 1.0, "logits are divided by it", Min: 0, MinExclusive: true));
        public static readonly Setting<bool> LogqCorrection =
            new(new ConfigKey("train.logq_correction", ConfigType.Bool, true,
                "subtract log p(item) from every logit (departure 2; the notebook has false)"));
        public static readonly Setting<bool> RemoveAccidentalHits =
            new(new ConfigKey("train.remove_accidental_hits", ConfigType.Bool, false,
                "mask in-batch negatives that are the row's own item"));
        public static readonly Setting<double> QueryIdDropout =
            new(new ConfigKey("train.query_id_dropout", ConfigType.Float, 0.0,
                "share of training rows whose query id (features.query.id) is replaced by the unknown id each epoch: the tower learns to serve " +
                "customers it never saw from their other features and history; 0 = none (the notebook)", Min: 0, Max: 1, MinExclusive: false));
        public static readonly Setting<long> ValidateEvery =
            new(new ConfigKey("train.validate_every", ConfigType.Int, 0L,
                "evaluate on the validation rows every N epochs into the history (0 = only in Evaluate; the notebook: 1)", Min: 0));
        public static readonly Setting<string> EarlyStoppingMetric =
            new(new ConfigKey("train.early_stopping_metric", ConfigType.String, "none",
                "none, mrr or hit@k (k in evaluate.ks): stop when it has not improved for `patience` validations, keep the best epoch's weights"));
        public static readonly Setting<long> EarlyStoppingPatience =
            new(new ConfigKey("train.early_stopping_patience", ConfigType.Int, 2L, "validations without improvement before stopping", Min: 1));
    }

    public static class Package
    {
        public static readonly Setting<long> Connectivity =
            new(new ConfigKey("package.connectivity", ConfigType.Int, 48L, "HNSW M of the inner-product index (the reference's OpenSearch m)", Min: 2, Max: 512));
        public static readonly Setting<long> ExpansionAdd =
            new(new ConfigKey("package.expansion_add", ConfigType.Int, 256L, "HNSW ef_construction", Min: 1, Max: 100000));
        public static readonly Setting<long> ExpansionSearch =
            new(new ConfigKey("package.expansion_search", ConfigType.Int, 100L, "HNSW ef_search", Min: 1, Max: 100000));
        public static readonly Setting<long> RecallQueries =
            new(new ConfigKey("package.recall_queries", ConfigType.Int, 1000L, "validation queries sampled to measure the index's recall@100 against exact search", Min: 1));
        public static readonly Setting<double> RecallFloor =
            new(new ConfigKey("package.recall_floor", ConfigType.Float, 0.95, "Package fails when the index's recall@100 is below this", Min: 0, Max: 1));
    }

    public static class Serve
    {
        public static readonly Setting<string> Host =
            new(new ConfigKey("serve.host", ConfigType.String, "127.0.0.1", "address the recommend service binds"));
        public static readonly Setting<long> Port =
            new(new ConfigKey("serve.port", ConfigType.Int, 5080L, "port of the recommend service", Min: 1, Max: 65535));
        public static readonly Setting<long> MaxK =
            new(new ConfigKey("serve.max_k", ConfigType.Int, 1000L, "largest k a request may ask for (larger is capped)", Min: 1));
        public static readonly Setting<long> MaxConcurrentRequests =
            new(new ConfigKey("serve.max_concurrent_requests", ConfigType.Int, 64L,
                "/recommend requests computed at once; one more is answered 503 at once", Min: 1, Max: 100000));
        public static readonly Setting<long> RequestTimeoutMs =
            new(new ConfigKey("serve.request_timeout_ms", ConfigType.Int, 5000L,
                "a request not answered by then gets a 503; also bounds reading its headers", Min: 1, Max: 3_600_000));
    }

    public static class Sweep
    {
        public static readonly Setting<IReadOnlyList<string>> Space =
            new(new ConfigKey("sweep.space", ConfigType.StringList, Array.Empty<string>(),
                "the settings to try, one entry per key: \"key=value|value|...\" (e.g. \"train.learning_rate=0.05|0.1\"); the grid of every combination"));
        public static readonly Setting<long> Trials =
            new(new ConfigKey("sweep.trials", ConfigType.Int, 0L, "how many grid points to try, a seeded random sample; 0: all of them", Min: 0));
        public static readonly Setting<string> Method =
            new(new ConfigKey("sweep.method", ConfigType.String, "two_tower",
                "whose tuning-set figure is maximised: a row of Evaluate's per-customer table (two_tower, blend, ease, buy_again, ...), " +
                "or cold_start (new customers served with their purchases as history; metric row_hit_at100)"));
        public static readonly Setting<string> Metric =
            new(new ConfigKey("sweep.metric", ConfigType.Choice, "map12", "the figure: map12 | recall_at_100 | row_hit_at100",
                Choices: ["map12", "recall_at_100", "row_hit_at100"]));
        public static readonly Setting<long> Seed =
            new(new ConfigKey("sweep.seed", ConfigType.Int, 42L, "seed of the random sample of grid points", Min: 0));
        public static readonly Setting<long> Windows =
            new(new ConfigKey("sweep.windows", ConfigType.Int, 1L,
                "tuning periods per trial, the latest first, each data.tuning_days long and ending where the next one begins, each its own run " +
                "trained on the days before it (more than 1: H&M's raw layout with raw.split time); a trial's figure is the mean of theirs",
                Min: 1, Max: 52));
    }

    public static class Backtest
    {
        public static readonly Setting<long> Windows =
            new(new ConfigKey("backtest.windows", ConfigType.Int, 4L,
                "validation windows of raw.validation_days each, the latest first, each ending where the next one begins; each its own run trained on the days before it",
                Min: 1, Max: 52));
        public static readonly Setting<IReadOnlyList<string>> Baseline =
            new(new ConfigKey("backtest.baseline", ConfigType.StringList, Array.Empty<string>(),
                "settings of a second run of every window, \"key=value\" each (e.g. [\"features.query.history.length=0\"]): every method's MAP@12 " +
                "paired with it customer by customer, per window and pooled; []: this config's figures only"));
    }

    public static class OpenSearch
    {
        public static readonly Setting<string> Url =
            new(new ConfigKey("opensearch.url", ConfigType.String, "http://localhost:9200", "cluster for PublishOpenSearch"));
        public static readonly Setting<string> Index =
            new(new ConfigKey("opensearch.index", ConfigType.String, "twotower-articles", "index name"));
        public static readonly Setting<string> Field =
            new(new ConfigKey("opensearch.field", ConfigType.String, "embedding", "knn_vector field name"));
        public static readonly Setting<long> Retries =
            new(new ConfigKey("opensearch.retries", ConfigType.Int, 3L, "attempts per request before giving up", Min: 1, Max: 20));
    }

    public static class RetrieveTwoTower
    {
        public static readonly Setting<bool> Enabled =
            new(new ConfigKey("retrieve.two_tower.enabled", ConfigType.Bool, true, "the trained model's exact top N over the catalogue"));
        public static readonly Setting<long> Count =
            new(new ConfigKey("retrieve.two_tower.count", ConfigType.Int, 100L, "candidates it contributes per customer", Min: 1, Max: 10000));
    }

    public static class RetrieveBuyAgain
    {
        public static readonly Setting<bool> Enabled =
            new(new ConfigKey("retrieve.buy_again.enabled", ConfigType.Bool, true, "the customer's past articles, by recency-weighted purchase count"));
        public static readonly Setting<long> Count =
            new(new ConfigKey("retrieve.buy_again.count", ConfigType.Int, 100L, "candidates it contributes per customer", Min: 1, Max: 10000));
        public static readonly Setting<double> HalfLifeDays =
            new(new ConfigKey("retrieve.buy_again.half_life_days", ConfigType.Float, 60.0, "a purchase this many days old counts half", Min: 0, MinExclusive: true));
    }

    public static class RetrieveRecentPopularity
    {
        public static readonly Setting<bool> Enabled =
            new(new ConfigKey("retrieve.recent_popularity.enabled", ConfigType.Bool, true, "the most bought articles of the last days, per customer segment"));
        public static readonly Setting<long> Count =
            new(new ConfigKey("retrieve.recent_popularity.count", ConfigType.Int, 100L, "candidates it contributes per customer", Min: 1, Max: 10000));
        public static readonly Setting<long> WindowDays =
            new(new ConfigKey("retrieve.recent_popularity.window_days", ConfigType.Int, 28L, "days before the cut-off that count", Min: 1));
        public static readonly Setting<double> HalfLifeDays =
            new(new ConfigKey("retrieve.recent_popularity.half_life_days", ConfigType.Float, 7.0, "a purchase this many days old counts half", Min: 0, MinExclusive: true));
        public static readonly Setting<string> Segment =
            new(new ConfigKey("retrieve.recent_popularity.segment", ConfigType.String, "none",
                "none, or a query feature that splits customers: a categorical one by value, a numeric one in bands of segment_width"));
        public static readonly Setting<double> SegmentWidth =
            new(new ConfigKey("retrieve.recent_popularity.segment_width", ConfigType.Float, 10.0, "band width of a numeric segment, in its raw units", Min: 0, MinExclusive: true));
    }

    public static class RetrieveCoPurchase
    {
        public static readonly Setting<bool> Enabled =
            new(new ConfigKey("retrieve.co_purchase.enabled", ConfigType.Bool, true, "articles bought by the same customers around the customer's recent ones"));
        public static readonly Setting<long> Count =
            new(new ConfigKey("retrieve.co_purchase.count", ConfigType.Int, 100L, "candidates it contributes per customer", Min: 1, Max: 10000));
        public static readonly Setting<long> WindowDays =
            new(new ConfigKey("retrieve.co_purchase.window_days", ConfigType.Int, 28L, "two purchases of a customer this close count as a pair", Min: 0));
        public static readonly Setting<long> Neighbours =
            new(new ConfigKey("retrieve.co_purchase.neighbours", ConfigType.Int, 50L, "neighbours kept per article", Min: 1, Max: 10000));
        public static readonly Setting<long> RecentArticles =
            new(new ConfigKey("retrieve.co_purchase.recent_articles", ConfigType.Int, 20L, "the customer's last distinct articles whose neighbours are proposed", Min: 1));
        public static readonly Setting<double> HalfLifeDays =
            new(new ConfigKey("retrieve.co_purchase.half_life_days", ConfigType.Float, 30.0, "a recent article this many days old weighs half", Min: 0, MinExclusive: true));
    }

    public static class RetrieveEase
    {
        public static readonly Setting<bool> Enabled =
            new(new ConfigKey("retrieve.ease.enabled", ConfigType.Bool, true, "EASE: closed-form item-item weights over the most bought articles"));
        public static readonly Setting<long> Count =
            new(new ConfigKey("retrieve.ease.count", ConfigType.Int, 100L, "candidates it contributes per customer", Min: 1, Max: 10000));
        public static readonly Setting<long> Articles =
            new(new ConfigKey("retrieve.ease.articles", ConfigType.Int, 1000L,
                "the N most bought articles it models (memory 3 x 8·N² bytes, time ~N³)", Min: 1, Max: 40000));
        public static readonly Setting<double> Lambda =
            new(new ConfigKey("retrieve.ease.lambda", ConfigType.Float, 10.0, "L2 regularization λ of B", Min: 0, MinExclusive: true));
        public static readonly Setting<long> Neighbours =
            new(new ConfigKey("retrieve.ease.neighbours", ConfigType.Int, 200L, "largest weights kept per article (articles − 1: exact x_u·B)", Min: 1, Max: 40000));
    }

    public static class RetrieveItemKnn
    {
        public static readonly Setting<bool> Enabled =
            new(new ConfigKey("retrieve.item_knn.enabled", ConfigType.Bool, true, "item-kNN: cosine similarity of the articles' customer columns"));
        public static readonly Setting<long> Count =
            new(new ConfigKey("retrieve.item_knn.count", ConfigType.Int, 100L, "candidates it contributes per customer", Min: 1, Max: 10000));
        public static readonly Setting<long> Neighbours =
            new(new ConfigKey("retrieve.item_knn.neighbours", ConfigType.Int, 200L, "most similar articles kept per article", Min: 1, Max: 10000));
    }

    public static class Recommend
    {
        public static readonly Setting<long> K =
            new(new ConfigKey("recommend.k", ConfigType.Int, 12L, "articles per customer in RecommendAll's lists (H&M's competition: 12)", Min: 1, Max: 10000));
        public static readonly Setting<string> List =
            new(new ConfigKey("recommend.list", ConfigType.Choice, "blend",
                "blend: the served default (the model's list where the package has no blend) | model: the two-tower model alone", Choices: ["blend", "model"]));
        public static readonly Setting<bool> ExcludeBought =
            new(new ConfigKey("recommend.exclude_bought", ConfigType.Bool, false, "leave out articles the customer bought in training, as serving's exclude_bought"));
        public static readonly Setting<string> Customers =
            new(new ConfigKey("recommend.customers", ConfigType.String, "auto",
                "auto: every customer of raw.customers_file (data.format hm_raw), else of the training data | training | a CSV file with a customer_id column"));
    }

    public static class Blend
    {
        public static readonly Setting<bool> Enabled =
            new(new ConfigKey("blend.enabled", ConfigType.Bool, true, "order the union of the sources with a learned ranker (else the sources are only reported)"));
        public static readonly Setting<long> LabelDays =
            new(new ConfigKey("blend.label_days", ConfigType.Int, 7L,
                "the ranker learns from the last days of the training period: sources from the days before, labels = what each customer bought in these", Min: 1));
        public static readonly Setting<long> LabelWindows =
            new(new ConfigKey("blend.label_windows", ConfigType.Int, 1L,
                "how many consecutive label_days windows the ranker learns from, the last ending on the last training day; " +
                "each window has its own sources (and model, with retrain_model) from the days before it", Min: 1, Max: 52));
        public static readonly Setting<long> TrainingCustomers =
            new(new ConfigKey("blend.training_customers", ConfigType.Int, 20000L, "customers of the label days the ranker learns from, at most (seeded sample)", Min: 1));
        public static readonly Setting<long> Trees =
            new(new ConfigKey("blend.trees", ConfigType.Int, 120L,
                "LightGBM LambdaRank boosting rounds, at most: blend.holdout_customers chooses how many of them to keep", Min: 1, Max: 100000));
        public static readonly Setting<double> HoldoutCustomers =
            new(new ConfigKey("blend.holdout_customers", ConfigType.Float, 0.2,
                "share of the learning customers held out to choose the number of trees (the fewest within blend.tree_tolerance of the best MAP@12 on them); 0: keep blend.trees",
                Min: 0, Max: 0.9));
        public static readonly Setting<long> HoldoutFolds =
            new(new ConfigKey("blend.holdout_folds", ConfigType.Int, 1L,
                "how many disjoint sets of blend.holdout_customers are held out in turn, each with its own probe ranker fitted on the other customers; " +
                "their held-out MAP@12 curves are averaged (a steadier choice of trees; folds × holdout_customers ≤ 1)", Min: 1, Max: 20));
        public static readonly Setting<double> TreeTolerance =
            new(new ConfigKey("blend.tree_tolerance", ConfigType.Float, 0.01,
                "relative MAP@12 the held-out customers may lose for fewer trees (fewer trees serve faster)", Min: 0, Max: 1));
        public static readonly Setting<long> Leaves =
            new(new ConfigKey("blend.leaves", ConfigType.Int, 31L, "leaves per tree", Min: 2, Max: 100000));
        public static readonly Setting<double> LearningRate =
            new(new ConfigKey("blend.learning_rate", ConfigType.Float, 0.05, "shrinkage per tree", Min: 0, MinExclusive: true, Max: 1));
        public static readonly Setting<long> MinRowsInLeaf =
            new(new ConfigKey("blend.min_rows_in_leaf", ConfigType.Int, 20L, "rows a leaf must hold", Min: 1));
        public static readonly Setting<long> Seed =
            new(new ConfigKey("blend.seed", ConfigType.Int, 42L, "seed of the customer sample and of LightGBM", Min: 0));
        public static readonly Setting<bool> RetrainModel =
            new(new ConfigKey("blend.retrain_model", ConfigType.Bool, false,
                "the two_tower source of the ranker's training rows from a model trained (train.* settings) on the purchases before the label days, " +
                "as the served model has not seen the week it predicts; false: the trained model, which has seen the label days"));
    }

    public static class Evaluate
    {
        public static readonly Setting<IReadOnlyList<long>> Ks =
            new(new ConfigKey("evaluate.ks", ConfigType.IntList, new long[] { 1, 5, 10, 50, 100 }, "cut-offs of hit@k and NDCG@k; MRR is capped at the largest",
                Min: 1, Max: 1_000_000));
    }

    /// <summary>The feature keys of one tower (features.query.*, features.candidate.*).</summary>
    public sealed record TowerKeys(string Tower, Setting<string> Id, Setting<IReadOnlyList<string>> Embedded, Setting<IReadOnlyList<string>> OneHot,
        Setting<IReadOnlyList<string>> Numeric, Setting<IReadOnlyList<string>> Raw)
    {
        /// <summary>The tower's feature lists, in the order their features enter the tower.</summary>
        public IEnumerable<Setting<IReadOnlyList<string>>> Lists => [Embedded, OneHot, Numeric, Raw];
    }

    public static readonly TowerKeys QueryTower = new("query", FeaturesQuery.Id, FeaturesQuery.Embedded, FeaturesQuery.OneHot,
        FeaturesQuery.Numeric, FeaturesQuery.Raw);

    public static readonly TowerKeys CandidateTower = new("candidate", FeaturesCandidate.Id, FeaturesCandidate.Embedded,
        FeaturesCandidate.OneHot, FeaturesCandidate.Numeric, FeaturesCandidate.Raw);

    /// <summary>Every key, in the order pipeline.yaml lists them (and config.yaml is written).</summary>
    public static readonly IReadOnlyList<ConfigKey> Keys =
    [
        Seed.Key,
        Threads.Key,
        Accelerator.Key,
        Data.Format.Key,
        Data.Dir.Key,
        Data.TrainFile.Key,
        Data.ValFile.Key,
        Data.Split.Key,
        Data.TuningDays.Key,
        Data.Synthesize.Key,
        Data.MissingNumeric.Key,
        Data.NegativeNumeric.Key,
        Raw.TransactionsFile.Key,
        Raw.CustomersFile.Key,
        Raw.ArticlesFile.Key,
        Raw.ArticleIdDigits.Key,
        Raw.Split.Key,
        Raw.ValidationDays.Key,
        Raw.ValidationOffsetDays.Key,
        Raw.ValidationFraction.Key,
        Raw.TestFraction.Key,
        Raw.SplitSeed.Key,
        Raw.SampleCustomers.Key,
        Raw.SampleSeed.Key,
        Raw.DedupePairs.Key,
        Raw.MissingCustomer.Key,
        Raw.MissingArticle.Key,
        Synth.Scale.Key,
        Synth.Seed.Key,
        Synth.ValFraction.Key,
        FeaturesQuery.Id.Key,
        FeaturesQuery.Embedded.Key,
        FeaturesQuery.OneHot.Key,
        FeaturesQuery.Numeric.Key,
        FeaturesQuery.Raw.Key,
        FeaturesHistory.Length.Key,
        FeaturesHistory.Pooling.Key,
        FeaturesHistory.ShareEmbedding.Key,
        FeaturesHistory.Distinct.Key,
        FeaturesHistory.RepeatBias.Key,
        FeaturesCandidate.Id.Key,
        FeaturesCandidate.Embedded.Key,
        FeaturesCandidate.OneHot.Key,
        FeaturesCandidate.Numeric.Key,
        FeaturesCandidate.Raw.Key,
        Normalize.Epsilon.Key,
        Model.EmbeddingDim.Key,
        Model.QueryLayers.Key,
        Model.CandidateLayers.Key,
        Model.OneHotDepth.Key,
        Train.Epochs.Key,
        Train.BatchSize.Key,
        Train.LearningRate.Key,
        Train.WeightDecay.Key,
        Train.WeightDecayConvention.Key,
        Train.Beta1.Key,
        Train.Beta2.Key,
        Train.Epsilon.Key,
        Train.Shuffle.Key,
        Train.Temperature.Key,
        Train.LogqCorrection.Key,
        Train.RemoveAccidentalHits.Key,
        Train.QueryIdDropout.Key,
        Train.ValidateEvery.Key,
        Train.EarlyStoppingMetric.Key,
        Train.EarlyStoppingPatience.Key,
        Package.Connectivity.Key,
        Package.ExpansionAdd.Key,
        Package.ExpansionSearch.Key,
        Package.RecallQueries.Key,
        Package.RecallFloor.Key,
        Serve.Host.Key,
        Serve.Port.Key,
        Serve.MaxK.Key,
        Serve.MaxConcurrentRequests.Key,
        Serve.RequestTimeoutMs.Key,
        Recommend.K.Key,
        Recommend.List.Key,
        Recommend.ExcludeBought.Key,
        Recommend.Customers.Key,
        OpenSearch.Url.Key,
        OpenSearch.Index.Key,
        OpenSearch.Field.Key,
        OpenSearch.Retries.Key,
        RetrieveTwoTower.Enabled.Key,
        RetrieveTwoTower.Count.Key,
        RetrieveBuyAgain.Enabled.Key,
        RetrieveBuyAgain.Count.Key,
        RetrieveBuyAgain.HalfLifeDays.Key,
        RetrieveRecentPopularity.Enabled.Key,
        RetrieveRecentPopularity.Count.Key,
        RetrieveRecentPopularity.WindowDays.Key,
        RetrieveRecentPopularity.HalfLifeDays.Key,
        RetrieveRecentPopularity.Segment.Key,
        RetrieveRecentPopularity.SegmentWidth.Key,
        RetrieveCoPurchase.Enabled.Key,
        RetrieveCoPurchase.Count.Key,
        RetrieveCoPurchase.WindowDays.Key,
        RetrieveCoPurchase.Neighbours.Key,
        RetrieveCoPurchase.RecentArticles.Key,
        RetrieveCoPurchase.HalfLifeDays.Key,
        RetrieveEase.Enabled.Key,
        RetrieveEase.Count.Key,
        RetrieveEase.Articles.Key,
        RetrieveEase.Lambda.Key,
        RetrieveEase.Neighbours.Key,
        RetrieveItemKnn.Enabled.Key,
        RetrieveItemKnn.Count.Key,
        RetrieveItemKnn.Neighbours.Key,
        Blend.Enabled.Key,
        Blend.LabelDays.Key,
        Blend.LabelWindows.Key,
        Blend.TrainingCustomers.Key,
        Blend.Trees.Key,
        Blend.HoldoutCustomers.Key,
        Blend.HoldoutFolds.Key,
        Blend.TreeTolerance.Key,
        Blend.Leaves.Key,
        Blend.LearningRate.Key,
        Blend.MinRowsInLeaf.Key,
        Blend.Seed.Key,
        Blend.RetrainModel.Key,
        Evaluate.Ks.Key,
        Sweep.Space.Key,
        Sweep.Trials.Key,
        Sweep.Method.Key,
        Sweep.Metric.Key,
        Sweep.Seed.Key,
        Sweep.Windows.Key,
        Backtest.Windows.Key,
        Backtest.Baseline.Key,
    ];

    static readonly Dictionary<string, ConfigKey> ByName = Keys.ToDictionary(k => k.Name);

    public static ConfigKey? Find(string name) => ByName.GetValueOrDefault(name);

    /// <summary>Every section and nested section, e.g. "features" and "features.query".</summary>
    public static readonly IReadOnlySet<string> Sections = Keys
        .SelectMany(k => k.Name.Split('.')[..^1].Select((_, i) => string.Join('.', k.Name.Split('.')[..(i + 1)])))
        .ToHashSet();
}
