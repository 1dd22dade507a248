using TwoTower.Config;

namespace TwoTower.Data;

/// <summary>Where the configured input data lives: data.dir joined with the data.* (notebook layout) or raw.* (H&amp;M raw layout) file names.</summary>
public static class DataFiles
{
    /// <summary>
    /// The column every stage carries beside the features when the data has dates (t_dat): the
    /// purchase day as a day number (days since 0001-01-01). Training ignores it; the candidate
    /// sources and the blend's time split read it.
    /// </summary>
    public const string DayColumn = "day";

    public static bool IsRawLayout(PipelineConfig c) => c.Get(ConfigSchema.Data.Format) == "hm_raw";

    public static string TrainCsv(PipelineConfig c) => Path.Combine(c.Get(ConfigSchema.Data.Dir), c.Get(ConfigSchema.Data.TrainFile));
    public static string ValCsv(PipelineConfig c) => Path.Combine(c.Get(ConfigSchema.Data.Dir), c.Get(ConfigSchema.Data.ValFile));

    public static string Transactions(PipelineConfig c) => Path.Combine(c.Get(ConfigSchema.Data.Dir), c.Get(ConfigSchema.Raw.TransactionsFile));
    public static string Customers(PipelineConfig c) => Path.Combine(c.Get(ConfigSchema.Data.Dir), c.Get(ConfigSchema.Raw.CustomersFile));
    public static string Articles(PipelineConfig c) => Path.Combine(c.Get(ConfigSchema.Data.Dir), c.Get(ConfigSchema.Raw.ArticlesFile));

    /// <summary>Whether the validation set is the last data.tuning_days of the training data (data.split: tuning).</summary>
    public static bool IsTuningSplit(PipelineConfig c) => c.Get(ConfigSchema.Data.Split) == "tuning";

    /// <summary>
    /// The input files of the configured layout: [train, val], or [transactions, customers, articles];
    /// with data.split: tuning the notebook layout's validation file is not read, so it is not an input.
    /// </summary>
    public static string[] All(PipelineConfig c) =>
        IsRawLayout(c) ? [Transactions(c), Customers(c), Articles(c)] : IsTuningSplit(c) ? [TrainCsv(c)] : [TrainCsv(c), ValCsv(c)];

    /// <summary>
    /// The files the built-in data generator writes for the configured layout, whatever the split:
    /// a run with data.split: tuning on a fresh checkout generates the validation file too, so the
    /// same data serves the validation run after it.
    /// </summary>
    public static string[] Generated(PipelineConfig c) =>
        IsRawLayout(c) ? [Transactions(c), Customers(c), Articles(c)] : [TrainCsv(c), ValCsv(c)];
}
