namespace TwoTower.Kernels;

/// <summary>
/// The batch positions of each distinct embedding row a batch touched, built on the host from the
/// batch's ids: Rows (sorted, distinct, Count of them) and, for group u, the positions
/// Positions[Starts[u]..Starts[u+1]) in batch order. Buffers are sized for the largest batch.
/// </summary>
public sealed class RowGroups : IDisposable
{
    readonly IKernels kernels;
    readonly long[] keys;
    readonly int[] rows, starts, positions;
    readonly DeviceBuffer<int> rowsBuffer;
    int built;

    public DeviceBuffer<int> Starts { get; }
    public DeviceBuffer<int> Positions { get; }
    public int Count { get; private set; }

    /// <summary>The distinct rows of the last <see cref="Build"/> (on the backend once uploaded).</summary>
    public DeviceBuffer<int> Rows => rowsBuffer.Slice(0, Count);

    public RowGroups(IKernels kernels, int capacity)
    {
        this.kernels = kernels;
        keys = new long[capacity];
        (rows, starts, positions) = (new int[capacity], new int[capacity + 1], new int[capacity]);
        rowsBuffer = kernels.Allocate<int>(capacity);
        Starts = kernels.Allocate<int>(capacity + 1);
        Positions = kernels.Allocate<int>(capacity);
    }

    /// <summary>
    /// Groups the batch's ids column[rows[p]] by value (a sort of (id, position) pairs) on the host;
    /// <see cref="Upload"/> then copies the groups to the backend. Split so that a trainer can group
    /// the next batch while the device is still busy with this one.
    /// </summary>
    public void Build(ReadOnlySpan<int> column, ReadOnlySpan<int> batchRows)
    {
        var n = batchRows.Length;
        for (var p = 0; p < n; p++)
            keys[p] = ((long)column[batchRows[p]] << 32) | (uint)p;
        Array.Sort(keys, 0, n);
        Count = 0;
        for (var p = 0; p < n; p++)
        {
            var id = (int)(keys[p] >> 32);
            if (Count == 0 || rows[Count - 1] != id)
            {
                starts[Count] = p;
                rows[Count++] = id;
            }
            positions[p] = (int)keys[p];
        }
        starts[Count] = n;
        built = n;
    }

    /// <summary>Copies the groups of the last <see cref="Build"/> to the backend.</summary>
    public void Upload()
    {
        kernels.CopyFromHost<int>(rows.AsSpan(0, Count), rowsBuffer);
        kernels.CopyFromHost<int>(starts.AsSpan(0, Count + 1), Starts);
        kernels.CopyFromHost<int>(positions.AsSpan(0, built), Positions);
    }

    public void Dispose()
    {
        rowsBuffer.Dispose();
        Starts.Dispose();
        Positions.Dispose();
    }
}
