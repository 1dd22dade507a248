using TwoTower.Config;
using TwoTower.Pipeline;
using nietras.SeparatedValues;

namespace TwoTower.Data;

public static partial class RawHm
{
    /// <summary>
    /// The streaming join: each transaction row, kept or dropped by the sample and the
    /// missing-customer/article policies, becomes one joined row of codes and numbers (its
    /// customer's and article's side columns looked up by id, month features derived from t_dat).
    /// </summary>
    sealed class TransactionJoin(
        PipelineConfig config, FeatureSet features, Dictionary<string, string> sources, SideTable customers, SideTable articles, bool[]? sampled)
    {
        readonly bool missingIsError = config.Get(ConfigSchema.Data.MissingNumeric) == "error";
        readonly int padding = (int)config.Get(ConfigSchema.Raw.ArticleIdDigits);
        readonly bool keepMissingCustomers = config.Get(ConfigSchema.Raw.MissingCustomer) == "keep";
        readonly bool keepMissingArticles = config.Get(ConfigSchema.Raw.MissingArticle) == "keep";
        // Code of each customer / article row once known: one id lookup per transaction instead of two.
        readonly int[] customerCodes = NewMemo(customers.RowOfId.Count);
        readonly int[] articleCodes = NewMemo(articles.RowOfId.Count);
        int missingCustomers, missingArticles, sampledOut, emptyNumbers;
        string path = "";

        public RowColumns Rows { get; private set; } = null!;
        public List<int> Days { get; private set; } = null!;
        public Levels CustomerLevels { get; } = new();
        public Levels ArticleLevels { get; } = new();

        public void Read(string transactionsPath)
        {
            path = transactionsPath;
            var expectedRows = EstimateRows(path);
            Rows = new RowColumns(features.CategoricalColumns, features.NumericColumns, expectedRows);
            Days = new List<int>(expectedRows);
            CsvFile.Read(path, ReadRows);
        }

        void ReadRows(SepReader reader)
        {
            var header = reader.Header;
            var iDate = header.IndexOf("t_dat");
            var iCustomer = header.IndexOf("customer_id");
            var iArticle = header.IndexOf("article_id");
            var (catPlans, numPlans) = Plans(header);
            var customerLookup = customers.RowOfId.GetAlternateLookup<ReadOnlySpan<char>>();
            var articleLookup = articles.RowOfId.GetAlternateLookup<ReadOnlySpan<char>>();
            var dates = new PurchaseDates(path);
            Span<char> articleBuffer = stackalloc char[64];
            foreach (var row in reader)
            {
                var customerId = row[iCustomer].Span;
                var articleId = NormalizeArticle(row[iArticle].Span, padding, articleBuffer);
                var customerRow = customerLookup.TryGetValue(customerId, out var cr) ? cr : -1;
                var articleRow = articleLookup.TryGetValue(articleId, out var ar) ? ar : -1;
                if (!Keep(customerRow, articleRow))
                    continue;
                var day = dates.Parse(row[iDate].Span, row.LineNumberFrom);
                Days.Add(day.DayNumber);
                foreach (var plan in catPlans)
                    plan.Codes!.Add(Code(plan, row, day.Month, customerId, customerRow, articleId, articleRow));
                foreach (var plan in numPlans)
                    plan.Numbers!.Add(Number(plan, row, day.Month, customerRow, articleRow));
            }
        }

        /// <summary>Per requested column, decided once: where its value comes from and where it goes, so the row loop does no name lookups.</summary>
        (ColumnPlan[] Categorical, ColumnPlan[] Numeric) Plans(SepReaderHeader header)
        {
            var catPlans = features.CategoricalColumns.Select(c => new ColumnPlan(c, sources[c], header, customers, articles)).ToArray();
            var numPlans = features.NumericColumns.Select(c => new ColumnPlan(c, sources[c], header, customers, articles)).ToArray();
            foreach (var plan in catPlans)
            {
                plan.Codes = Rows.Cats[plan.Column];
                plan.RowLevels = Rows.Levels.GetValueOrDefault(plan.Column);
            }
            foreach (var plan in numPlans)
            {
                plan.Numbers = Rows.Nums[plan.Column];
                plan.SideNumbers = plan.Kind switch
                {
                    Source.Customers => customers.Numbers[plan.Column],
                    Source.Articles => articles.Numbers[plan.Column],
                    _ => null,
                };
            }
            return (catPlans, numPlans);
        }

        /// <summary>Whether the transaction stays: its customer is in the sample, and a missing customer or article is kept by policy (counted either way).</summary>
        bool Keep(int customerRow, int articleRow)
        {
            if (sampled != null && (customerRow < 0 || !sampled[customerRow]))
            {
                sampledOut++;
                return false;
            }
            if (customerRow < 0)
            {
                missingCustomers++;
                if (!keepMissingCustomers)
                    return false;
            }
            if (articleRow < 0)
            {
                missingArticles++;
                if (!keepMissingArticles)
                    return false;
            }
            return true;
        }

        int Code(ColumnPlan plan, SepReader.Row row, int month, ReadOnlySpan<char> customerId, int customerRow, ReadOnlySpan<char> articleId,
            int articleRow) =>
            plan.Kind switch
            {
                Source.CustomerId => customerRow < 0 ? CustomerLevels.Code(customerId) : CodeOfRow(customerCodes, customerRow, CustomerLevels, customerId),
                Source.ArticleId => articleRow < 0 ? ArticleLevels.Code(articleId) : CodeOfRow(articleCodes, articleRow, ArticleLevels, articleId),
                Source.Customers => plan.SideCode(customerRow, plan.RowLevels!),
                Source.Articles => plan.SideCode(articleRow, plan.RowLevels!),
                Source.Month => plan.RowLevels!.Code(MonthNames[month]),
                _ => plan.RowLevels!.Code(row[plan.Index].Span),
            };

        float Number(ColumnPlan plan, SepReader.Row row, int month, int customerRow, int articleRow)
        {
            var value = plan.Kind switch
            {
                Source.Customers => customerRow < 0 ? float.NaN : plan.SideNumbers![customerRow],
                Source.Articles => articleRow < 0 ? float.NaN : plan.SideNumbers![articleRow],
                Source.MonthSin => MonthEncoding.Sin[month],
                Source.MonthCos => MonthEncoding.Cos[month],
                Source.Month => month,
                _ => ParseNumber(row[plan.Index].Span, path, row.LineNumberFrom, plan.Column),
            };
            if (float.IsNaN(value))
            {
                if (missingIsError)
                    throw new PipelineError($"{path}:{row.LineNumberFrom}: no value for numeric feature '{plan.Column}' " +
                                            "(data.missing_numeric is 'error'; 'impute_mean' fills it with the training mean)");
                emptyNumbers++;
            }
            return value;
        }

        /// <summary>Says what was dropped or filled, with counts; an error when no transaction is left.</summary>
        public void Report(IPipelineLog log)
        {
            if (Days.Count == 0)
                throw new PipelineError($"{path}: no transactions left (after sampling and the missing-customer/article policies)");
            if (sampledOut > 0)
                log.Info($"{sampledOut:N0} transactions of customers outside the sample dropped");
            if (missingCustomers > 0)
                log.Warning($"{missingCustomers:N0} transactions name a customer absent from {DataFiles.Customers(config)}: " +
                            (keepMissingCustomers ? "kept with empty customer features" : "dropped") + " (raw.missing_customer)");
            if (missingArticles > 0)
                log.Warning($"{missingArticles:N0} transactions name an article absent from {DataFiles.Articles(config)}: " +
                            (keepMissingArticles ? "kept with empty article features" : "dropped") + " (raw.missing_article)");
            if (emptyNumbers > 0)
                log.Warning($"{emptyNumbers:N0} numeric feature values are missing; imputing the training mean (data.missing_numeric)");
        }
    }
}
