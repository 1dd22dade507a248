using System.Net.Http.Json;
using System.Text.Json.Nodes;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using TwoTower.Benchmarks;
using TwoTower.Config;
using TwoTower.Serving;

namespace TwoTower.Tests;

/// <summary>
/// A browser test: run when Debian's chromium and chromedriver are installed (.ci/run installs them),
/// skipped otherwise, unless TWOTOWER_BROWSER_TESTS=required (set by .ci/run), where a missing
/// browser fails the test instead of skipping it.
/// </summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public const string Chromium = "/usr/bin/chromium";
    public const string ChromeDriver = "/usr/bin/chromedriver";

    public BrowserFactAttribute()
    {
        if (!(File.Exists(Chromium) && File.Exists(ChromeDriver)) && Environment.GetEnvironmentVariable("TWOTOWER_BROWSER_TESTS") != "required")
            Skip = $"needs {Chromium} and {ChromeDriver} (Debian packages chromium and chromium-driver; .ci/run installs them)";
    }
}

/// <summary>A small package served on a loopback port, and headless chromium driven through chromedriver.</summary>
public sealed class ServedPage : IDisposable
{
    // With history features, so the page's recent-articles field (a new customer's cold start) is there to test.
    readonly PackagedPipeline pipeline = new HistoryPackagedPipeline();
    readonly Microsoft.AspNetCore.Builder.WebApplication app;
    readonly string profile = Directory.CreateTempSubdirectory("twotower-chromium-").FullName;
    IWebDriver? driver;

    public Recommender Recommender { get; }
    public Uri Address { get; }
    public HttpClient Http { get; }

    /// <summary>Screenshots of each state, under the test output (bin/…/screenshots).</summary>
    public string ScreenshotDir { get; } = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "screenshots")).FullName;

    public ServedPage()
    {
        Recommender = new Recommender(pipeline.PackageDir);
        var port = ServingBenchmark.FreePort();
        app = RecommendService.Build(Recommender, ServiceSettings.From(pipeline.Config) with { Host = "127.0.0.1", Port = port });
        app.StartAsync().GetAwaiter().GetResult();
        Address = new Uri($"http://127.0.0.1:{port}");
        Http = new HttpClient { BaseAddress = Address };
    }

    /// <summary>The browser, started on first use (a skipped test starts none).</summary>
    public IWebDriver Driver => driver ??= StartBrowser();

    IWebDriver StartBrowser()
    {
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(BrowserFactAttribute.ChromeDriver)!, Path.GetFileName(BrowserFactAttribute.ChromeDriver));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        var options = new ChromeOptions { BinaryLocation = BrowserFactAttribute.Chromium };
        // Without the networking flags chromium keeps trying to reach Google's hosts, which this network refuses.
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1200,1400", $"--user-data-dir={profile}");
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    public void Dispose()
    {
        driver?.Quit();
        Http.Dispose();
        app.StopAsync().GetAwaiter().GetResult();
        Recommender.Dispose();
        pipeline.Dispose();
        Directory.Delete(profile, recursive: true);
    }
}

/// <summary>Serve's page in a real browser: what it shows is what the JSON API answers.</summary>
public class PageTests(ServedPage page) : IClassFixture<ServedPage>
{
    IWebDriver Browser => page.Driver;

    T WaitFor<T>(Func<IWebDriver, T> condition) =>
        new WebDriverWait(Browser, TimeSpan.FromSeconds(20)) { PollingInterval = TimeSpan.FromMilliseconds(50) }.Until(condition);

    void Screenshot(string name) => ((ITakesScreenshot)Browser).GetScreenshot().SaveAsFile(Path.Combine(page.ScreenshotDir, name + ".png"));

    void Open(string query = "")
    {
        Browser.Manage().Window.Size = new System.Drawing.Size(1200, 1400);
        Browser.Navigate().GoToUrl(new Uri(page.Address, "/" + query));
        WaitFor(b => b.FindElements(By.CssSelector("#card-metrics tr")).Count > 0);
    }

    /// <summary>Types a customer id, picks k and the exclude toggle, and shows the list; returns when the list or the message is up.</summary>
    void LookUp(string customer, int k, bool excludeBought = false)
    {
        var input = Browser.FindElement(By.Id("customer"));
        input.Clear();
        input.SendKeys(customer);
        Browser.FindElement(By.XPath($"//select[@id='k']/option[text()='{k}']")).Click();
        var toggle = Browser.FindElement(By.Id("exclude-bought"));
        if (toggle.Selected != excludeBought)
            toggle.Click();
        Browser.FindElement(By.CssSelector("#lookup button")).Click();
        WaitFor(b => b.FindElement(By.Id("recommendations-title")).Text.Contains(customer) || b.FindElement(By.Id("message")).Displayed);
    }

    string[] ShownArticles() => Browser.FindElements(By.CssSelector("#recommendation-rows tr")).Select(r => r.GetDomAttribute("data-article") ?? "").ToArray();

    bool Script(string code, params object[] args) => ((IJavaScriptExecutor)Browser).ExecuteScript(code, args) is true;

    async Task<JsonNode> Api(string path) => (await page.Http.GetFromJsonAsync<JsonNode>(path))!;

    /// <summary>A known customer whose blended top 12 holds an article they bought before.</summary>
    async Task<(string Customer, HashSet<string> Bought)> CustomerWithBoughtArticleInList()
    {
        foreach (var customer in page.Recommender.CustomerIdsStartingWith("", 200))
        {
            var bought = (await Api($"/history?customer_id={customer}"))["articles_bought"]!.AsArray().Select(a => a!.GetValue<string>()).ToHashSet();
            var listed = (await Api($"/recommend?customer_id={customer}&k=12"))["items"]!.AsArray().Select(i => i!["article_id"]!.GetValue<string>());
            if (listed.Any(bought.Contains))
                return (customer, bought);
        }
        throw new InvalidOperationException("no customer among the first 200 has a bought article in their list");
    }

    [BrowserFact]
    public void PageLoadsWithTheModelCardMetricsAndPlots()
    {
        Open();
        var methods = Browser.FindElements(By.CssSelector("#card-metrics tr td:first-child")).Select(e => e.Text).ToArray();
        Assert.Contains("blend", methods);
        Assert.Contains("buy_again", methods);
        Assert.NotEmpty(page.Recommender.PlotNames);
        WaitFor(b => b.FindElements(By.CssSelector("#card-plots img")).Count == page.Recommender.PlotNames.Count);
        Assert.All(Browser.FindElements(By.CssSelector("#card-plots img")), img =>
            Assert.True(WaitFor(_ => Script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)), $"plot {img.GetDomAttribute("src")} did not load"));
        Assert.False(Browser.FindElement(By.Id("message")).Displayed);
        ((IJavaScriptExecutor)Browser).ExecuteScript("document.getElementById('model-card').scrollIntoView()");
        Screenshot("model-card");
    }

    [BrowserFact]
    public async Task KnownCustomerShowsHistoryAndTheListRecommendReturns()
    {
        var (customer, _) = await CustomerWithBoughtArticleInList();
        Open();
        LookUp(customer, 12);
        var expected = (await Api($"/recommend?customer_id={customer}&k=12"))["items"]!.AsArray().Select(i => i!["article_id"]!.GetValue<string>()).ToArray();
        Assert.Equal(12, expected.Length);
        Assert.Equal(expected, ShownArticles());
        Assert.Contains(Browser.FindElements(By.CssSelector("#recommendation-rows td.bought")), td => td.Text == "bought");
        Assert.NotEmpty(Browser.FindElements(By.CssSelector("#recommendation-rows .source")));

        var history = await Api($"/history?customer_id={customer}");
        var dates = Browser.FindElements(By.CssSelector("#history-rows tr td:first-child")).Select(e => e.Text).ToArray();
        Assert.Equal(history["purchases"]!.AsArray().Select(p => p!["date"]!.GetValue<string>()), dates);
        Assert.Equal(dates.OrderDescending(StringComparer.Ordinal), dates);
        Assert.False(Browser.FindElement(By.Id("message")).Displayed);
        Screenshot("known-customer");

        LookUp(customer, 5);
        Assert.Equal(expected.Take(5), ShownArticles());
    }

    [BrowserFact]
    public async Task ExcludeBoughtRemovesTheCustomersBoughtArticles()
    {
        var (customer, bought) = await CustomerWithBoughtArticleInList();
        Open();
        LookUp(customer, 12, excludeBought: true);
        WaitFor(b => ShownArticles().Length == 12);
        var shown = ShownArticles();
        Assert.DoesNotContain(shown, bought.Contains);
        Assert.All(Browser.FindElements(By.CssSelector("#recommendation-rows td.bought")), td => Assert.Equal("", td.Text));
        var expected = (await Api($"/recommend?customer_id={customer}&k=12&exclude_bought=true"))["items"]!.AsArray().Select(i => i!["article_id"]!.GetValue<string>());
        Assert.Equal(expected, shown);
        Screenshot("exclude-bought");
    }

    /// <summary>A new customer with recent articles typed in: the list is /recommend's with that history, and differs from the one without.</summary>
    [BrowserFact]
    public async Task ANewCustomersRecentArticlesReachTheirList()
    {
        Open();
        var field = Browser.FindElement(By.Id("recent"));
        Assert.True(field.Displayed, "a model with history features offers the field");
        var recent = string.Join(",", page.Recommender.ArticleIds.Take(3));
        try
        {
            field.SendKeys(recent);
            LookUp("a-new-customer", 12);
            var expected = (await Api($"/recommend?customer_id=a-new-customer&k=12&history={Uri.EscapeDataString(recent)}"))["items"]!.AsArray()
                .Select(i => i!["article_id"]!.GetValue<string>()).ToArray();
            var without = (await Api("/recommend?customer_id=a-new-customer&k=12"))["items"]!.AsArray().Select(i => i!["article_id"]!.GetValue<string>());
            Assert.Equal(expected, ShownArticles());
            Assert.NotEqual(without, expected);
            Assert.Contains("who bought", Browser.FindElement(By.Id("message")).Text);
            Assert.Contains("history=", Browser.Url);
            Screenshot("new-customer-recent-articles");
        }
        finally
        {
            field.Clear();   // the other tests share the page
        }
    }

    [BrowserFact]
    public void UnknownCustomerGetsTheMessageAndNoHistory()
    {
        Open();
        LookUp("nobody-we-know", 12);
        var message = WaitFor(b => b.FindElement(By.Id("message")).Displayed ? b.FindElement(By.Id("message")) : null)!;
        Assert.Contains("was not seen in training", message.Text);
        Assert.False(Browser.FindElement(By.Id("history")).Displayed);
        Assert.Equal(12, ShownArticles().Length);
        Screenshot("unknown-customer");
    }

    [BrowserFact]
    public void ServiceErrorsAreShownAsMessagesNotRawJson()
    {
        // k=0 reaches /recommend (the page passes the address's k through), which answers 400 with a JSON error.
        Browser.Manage().Window.Size = new System.Drawing.Size(1200, 1400);
        Browser.Navigate().GoToUrl(new Uri(page.Address, "/?customer_id=nobody&k=0"));
        var message = WaitFor(b => b.FindElement(By.Id("message")).Displayed ? b.FindElement(By.Id("message")) : null)!;
        Assert.StartsWith("k must be a positive integer", message.Text);
        Assert.DoesNotContain("{", message.Text);
        Assert.False(Browser.FindElement(By.Id("recommendations")).Displayed);
    }

    [BrowserFact]
    public async Task PhoneWidthNeedsNoSidewaysScrollingOfThePage()
    {
        var (customer, _) = await CustomerWithBoughtArticleInList();
        Open();
        Browser.Manage().Window.Size = new System.Drawing.Size(390, 1400);
        LookUp(customer, 12);
        var overflow = ((IJavaScriptExecutor)Browser).ExecuteScript("return document.documentElement.scrollWidth - document.documentElement.clientWidth");
        Assert.True(Convert.ToInt64(overflow) <= 0, $"the page is {overflow} px wider than a 390 px window");
        Screenshot("phone-width");
    }
}
