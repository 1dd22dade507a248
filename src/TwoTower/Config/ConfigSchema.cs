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

/// <summary>
/// Every key a run can depend on. pipeline.yaml lists them all with comments; a test keeps its
/// values equal to these defaults. Keys a stage reads are named by prefix in that stage.
/// </summary>
public static class ConfigSchema
{
    static readonly string[] Empty = [];

    public static readonly IReadOnlyList<ConfigKey> Keys =
    [
        new("seed", ConfigType.Int, 42L, "seed of every random choice in Train", Min: 0),
        new("threads", ConfigType.Int, 0L, "worker threads for the CPU backend; 0 = all cores", Min: 0),
        new("accelerator", ConfigType.Choice, "auto",
            "auto: CUDA if present, else an OpenCL GPU, else the SIMD CPU backend; cpu: SIMD; ilgpu-cpu: ILGPU's CPU accelerator (slow, for checks); cuda; opencl",
            Choices: ["auto", "cpu", "ilgpu-cpu", "cuda", "opencl"]),

        new("data.format", ConfigType.Choice, "notebook_csv",
            "notebook_csv: train_df.csv/val_df.csv as the notebook reads them; hm_raw: H&M's three raw files (raw.*)",
            Choices: ["notebook_csv", "hm_raw"]),
        new("data.dir", ConfigType.String, "data/synthetic", "folder holding the input files"),
        new("data.train_file", ConfigType.String, "train_df.csv", "training transactions"),
        new("data.val_file", ConfigType.String, "val_df.csv", "validation transactions"),
        new("data.synthesize", ConfigType.Choice, "auto",
            "auto: generate built-in data when the files are absent; never: require them",
            Choices: ["auto", "never"]),
        new("data.missing_numeric", ConfigType.Choice, "impute_mean",
            "empty numeric cell: impute_mean (warn with a count) or error",
            Choices: ["impute_mean", "error"]),

        new("raw.transactions_file", ConfigType.String, "transactions_train.csv", "hm_raw: t_dat, customer_id, article_id, …"),
        new("raw.customers_file", ConfigType.String, "customers.csv", "hm_raw: customer_id, age, …"),
        new("raw.articles_file", ConfigType.String, "articles.csv", "hm_raw: article_id, garment_group_name, …"),
        new("raw.article_id_digits", ConfigType.Int, 10L,
            "zero-pad all-digit article ids to this many digits (H&M's CSV drops the leading 0); 0 = as written", Min: 0, Max: 64),
        new("raw.split", ConfigType.Choice, "time", "time: the last raw.validation_days days are validation; random: seeded row split",
            Choices: ["time", "random"]),
        new("raw.validation_days", ConfigType.Int, 7L, "time split: days of validation at the end (H&M's test week)", Min: 1),
        new("raw.validation_fraction", ConfigType.Float, 0.1, "random split: share of rows for validation", Min: 0, MinExclusive: true, Max: 0.9),
        new("raw.test_fraction", ConfigType.Float, 0.1, "random split: share of rows held out as test (not used)", Min: 0, Max: 0.9),
        new("raw.split_seed", ConfigType.Int, 0L, "random split seed", Min: 0),
        new("raw.sample_customers", ConfigType.Int, 0L, "keep only this many customers, drawn with raw.sample_seed; 0 = all", Min: 0),
        new("raw.sample_seed", ConfigType.Int, 0L, "customer sampling seed", Min: 0),
        new("raw.dedupe_pairs", ConfigType.Bool, false, "keep only the first row of each (customer, article) pair in each split"),
        new("raw.missing_customer", ConfigType.Choice, "keep",
            "a transaction whose customer is not in the customers file: keep (empty customer features) or drop", Choices: ["keep", "drop"]),
        new("raw.missing_article", ConfigType.Choice, "keep",
            "a transaction whose article is not in the articles file: keep (empty article features) or drop", Choices: ["keep", "drop"]),

        new("synth.scale", ConfigType.Float, 1.0,
            "1 = notebook scale (410k rows); 77.56 = full H&M (31.8M rows)", Min: 0, MinExclusive: true, Max: 200),
        new("synth.seed", ConfigType.Int, 2022L, "seed of the built-in data generator", Min: 0),
        new("synth.val_fraction", ConfigType.Float, 0.11,
            "validation rows as a fraction of training rows", Min: 0, MinExclusive: true, Max: 1),

        new("features.query.id", ConfigType.String, "customer_id", "the query identity column"),
        new("features.query.embedded", ConfigType.StringList, new[] { "customer_id" }, "categorical, embedded"),
        new("features.query.one_hot", ConfigType.StringList, Empty, "categorical, one-hot"),
        new("features.query.numeric", ConfigType.StringList, new[] { "age" }, "numeric, normalized"),
        new("features.query.raw", ConfigType.StringList, new[] { "month_sin", "month_cos" }, "numeric, used as is"),
        new("features.candidate.id", ConfigType.String, "article_id", "the candidate identity column"),
        new("features.candidate.embedded", ConfigType.StringList, new[] { "article_id" }, "categorical, embedded"),
        new("features.candidate.one_hot", ConfigType.StringList, new[] { "garment_group_name", "index_group_name" },
            "categorical, one-hot"),
        new("features.candidate.numeric", ConfigType.StringList, Empty, "numeric, normalized"),
        new("features.candidate.raw", ConfigType.StringList, Empty, "numeric, used as is"),

        new("normalize.epsilon", ConfigType.Float, 1e-7, "floor of the standard deviation", Min: 0, MinExclusive: true),

        new("model.embedding_dim", ConfigType.Int, 16L, "width of every id embedding", Min: 1, Max: 4096),
        new("model.query_layers", ConfigType.IntList, new long[] { 16, 16 },
            "Dense sizes of the query tower; relu between, none after the last", Min: 1, Max: 4096),
        new("model.candidate_layers", ConfigType.IntList, new long[] { 16, 16 },
            "Dense sizes of the candidate tower", Min: 1, Max: 4096),
        new("model.one_hot_depth", ConfigType.Choice, "vocab_plus_oov",
            "vocab_plus_oov: n+1 columns (departure 1); notebook: n columns, the last category all zeros",
            Choices: ["vocab_plus_oov", "notebook"]),

        new("train.epochs", ConfigType.Int, 5L, "passes over the training rows", Min: 1, Max: 100000),
        new("train.batch_size", ConfigType.Int, 2048L, "rows per batch (in-batch negatives)", Min: 2, Max: 1 << 20),
        new("train.learning_rate", ConfigType.Float, 0.01, "AdamW learning rate", Min: 0, MinExclusive: true),
        new("train.weight_decay", ConfigType.Float, 0.001, "AdamW decoupled weight decay", Min: 0),
        new("train.weight_decay_convention", ConfigType.Choice, "tfa",
            "tfa: w -= wd*w (the notebook's TensorFlow-Addons AdamW); keras: w -= lr*wd*w",
            Choices: ["tfa", "keras"]),
        new("train.beta1", ConfigType.Float, 0.9, "Adam beta1", Min: 0, Max: 0.999999),
        new("train.beta2", ConfigType.Float, 0.999, "Adam beta2", Min: 0, Max: 0.999999999),
        new("train.epsilon", ConfigType.Float, 1e-7, "Adam epsilon", Min: 0, MinExclusive: true),
        new("train.shuffle", ConfigType.Choice, "batches",
            "batches: fixed batches in file order, batch order shuffled each epoch (the notebook); rows: rows reshuffled each epoch",
            Choices: ["batches", "rows"]),
        new("train.temperature", ConfigType.Float, 1.0, "logits are divided by it", Min: 0, MinExclusive: true),
        new("train.logq_correction", ConfigType.Bool, true,
            "subtract log p(item) from every logit (departure 2; the notebook has false)"),
        new("train.remove_accidental_hits", ConfigType.Bool, false,
            "mask in-batch negatives that are the row's own item"),
        new("train.validate_every", ConfigType.Int, 0L,
            "evaluate on the validation rows every N epochs into the history (0 = only in Evaluate; the notebook: 1)", Min: 0),
        new("train.early_stopping_metric", ConfigType.String, "none",
            "none, mrr or hit@k (k in evaluate.ks): stop when it has not improved for `patience` validations, keep the best epoch's weights"),
        new("train.early_stopping_patience", ConfigType.Int, 2L, "validations without improvement before stopping", Min: 1),

        new("package.connectivity", ConfigType.Int, 48L, "HNSW M of the inner-product index (the reference's OpenSearch m)", Min: 2, Max: 512),
        new("package.expansion_add", ConfigType.Int, 256L, "HNSW ef_construction", Min: 1, Max: 100000),
        new("package.expansion_search", ConfigType.Int, 100L, "HNSW ef_search", Min: 1, Max: 100000),
        new("package.recall_queries", ConfigType.Int, 1000L, "validation queries sampled to measure the index's recall@100 against exact search", Min: 1),
        new("package.recall_floor", ConfigType.Float, 0.95, "Package fails when the index's recall@100 is below this", Min: 0, Max: 1),
        new("serve.host", ConfigType.String, "127.0.0.1", "address the recommend service binds"),
        new("serve.port", ConfigType.Int, 5080L, "port of the recommend service", Min: 1, Max: 65535),
        new("serve.max_k", ConfigType.Int, 1000L, "largest k a request may ask for (larger is capped)", Min: 1),
        new("opensearch.url", ConfigType.String, "http://localhost:9200", "cluster for PublishOpenSearch"),
        new("opensearch.index", ConfigType.String, "twotower-articles", "index name"),
        new("opensearch.field", ConfigType.String, "embedding", "knn_vector field name"),
        new("opensearch.retries", ConfigType.Int, 3L, "attempts per request before giving up", Min: 1, Max: 20),
        new("evaluate.ks", ConfigType.IntList, new long[] { 1, 5, 10, 50, 100 }, "cut-offs of hit@k and NDCG@k; MRR is capped at the largest",
            Min: 1, Max: 1_000_000),
    ];

    static readonly Dictionary<string, ConfigKey> ByName = Keys.ToDictionary(k => k.Name);

    public static ConfigKey? Find(string name) => ByName.GetValueOrDefault(name);

    /// <summary>Every section and nested section, e.g. "features" and "features.query".</summary>
    public static readonly IReadOnlySet<string> Sections = Keys
        .SelectMany(k => k.Name.Split('.')[..^1].Select((_, i) => string.Join('.', k.Name.Split('.')[..(i + 1)])))
        .ToHashSet();
}
