namespace TwoTower.Model;

/// <summary>
/// The model's score of an article for a customer, <see cref="Score"/> (q·c, plus the repeat bias), and
/// the repeat bias's share of it, <see cref="RepeatBias"/> (the biases of the history slots that hold
/// the article; 0 without the bias or outside the history). Both are blend features: the ranker can
/// then tell the model's taste for an article from its guess that the customer buys it again.
/// </summary>
public readonly record struct ModelScore(float Score, float RepeatBias)
{
    /// <summary>For a customer or article the model cannot score.</summary>
    public static readonly ModelScore None = new(float.NaN, float.NaN);
}
