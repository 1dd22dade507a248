namespace TwoTower.Kernels;

/// <summary>
/// The batch positions of each distinct embedding row a batch touched, built on the host from the
/// batch's ids: Rows (distinct, Count of them, in order of first appearance) and, for group u, the
/// positions Positions[Starts[u]..Starts[u+1]) in batch order. Grouped with a small open-addressing
/// hash table (cleared after each batch) and a counting pass: about 5× faster than sorting
/// (id, position) pairs, and the host does this every step. A batch may also bring several ids per
/// row (a bag: the purchase history) and several sources (a table shared by two inputs).
/// Buffers are sized for the most ids a batch can bring (capacity).
/// </summary>
public sealed class RowGroups : IDisposable
{
    readonly IKernels kernels;
    // rows | starts | positions, packed in one array so that one copy moves a batch's groups.
    readonly int[] packed;
    readonly int capacity;
    readonly int[] groupOf, cursor, slotOfGroup;
    readonly int[] tableIds, tableGroups;
    readonly int tableMask, tableShift;
    readonly DeviceBuffer<int> packedBuffer;

    Span<int> HostRows => packed.AsSpan(0, capacity);
    Span<int> HostStarts => packed.AsSpan(capacity, capacity + 1);
    Span<int> HostPositions => packed.AsSpan(2 * capacity + 1, capacity);

    public DeviceBuffer<int> Starts { get; }
    public DeviceBuffer<int> Positions { get; }
    public int Count { get; private set; }
    int entries;

    /// <summary>The distinct rows of the last <see cref="Build"/> (on the backend once uploaded).</summary>
    public DeviceBuffer<int> Rows => packedBuffer.Slice(0, Count);

    public RowGroups(IKernels kernels, int capacity)
    {
        this.kernels = kernels;
        this.capacity = capacity;
        packed = new int[3 * capacity + 1];
        (groupOf, cursor, slotOfGroup) = (new int[capacity], new int[capacity], new int[capacity]);
        // At most half full: short probe sequences.
        var bits = Math.Max(4, 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)(2 * capacity - 1)));
        tableShift = 32 - bits;
        tableMask = (1 << bits) - 1;
        tableIds = Enumerable.Repeat(-1, 1 << bits).ToArray();
        tableGroups = new int[1 << bits];
        packedBuffer = kernels.Allocate<int>(packed.Length);
        Starts = packedBuffer.Slice(capacity, capacity + 1);
        Positions = packedBuffer.Slice(2 * capacity + 1, capacity);
    }

    /// <summary>
    /// Groups the batch's ids column[batchRows[p]] (non-negative) by value on the host;
    /// <see cref="Upload"/> then copies the groups to the backend. Split so that a trainer can group
    /// the next batch while the device is still busy with this one.
    /// </summary>
    public void Build(ReadOnlySpan<int> column, ReadOnlySpan<int> batchRows) => Build(column, 1, batchRows);

    /// <summary>Groups one source of bags (see <see cref="Add"/>): the batch's purchase histories.</summary>
    public void Build(ReadOnlySpan<int> ids, int bagLength, ReadOnlySpan<int> batchRows)
    {
        Begin();
        Add(ids, bagLength, batchRows);
        Finish();
    }

    /// <summary>Starts a grouping of several id sources (<see cref="Add"/> each, then <see cref="Finish"/>).</summary>
    public void Begin()
    {
        Count = 0;
        entries = 0;
    }

    /// <summary>
    /// Adds a source of bags: batch row p's ids are ids[batchRows[p]·bagLength ..+bagLength), an id &lt; 0
    /// an empty slot (not grouped). Its positions continue those of the sources added before:
    /// e = (entries so far) + p·bagLength + j.
    /// </summary>
    public void Add(ReadOnlySpan<int> ids, int bagLength, ReadOnlySpan<int> batchRows)
    {
        var rows = HostRows;
        for (var p = 0; p < batchRows.Length; p++)
        {
            var bag = ids.Slice(batchRows[p] * bagLength, bagLength);
            for (var j = 0; j < bagLength; j++, entries++)
            {
                var id = bag[j];
                if (id < 0)
                {
                    groupOf[entries] = -1;
                    continue;
                }
                var slot = (int)(((uint)id * 0x9E3779B1u) >> tableShift);
                while (tableIds[slot] != -1 && tableIds[slot] != id)
                    slot = (slot + 1) & tableMask;
                if (tableIds[slot] == -1)
                {
                    tableIds[slot] = id;
                    tableGroups[slot] = Count;
                    slotOfGroup[Count] = slot;
                    rows[Count] = id;
                    cursor[Count++] = 0;
                }
                var group = tableGroups[slot];
                groupOf[entries] = group;
                cursor[group]++;
            }
        }
    }

    /// <summary>Lays out each group's positions in order (a counting pass) and clears the hash table for the next batch.</summary>
    public void Finish()
    {
        var starts = HostStarts;
        var positions = HostPositions;
        starts[0] = 0;
        for (var u = 0; u < Count; u++)
        {
            starts[u + 1] = starts[u] + cursor[u];
            cursor[u] = starts[u];
            tableIds[slotOfGroup[u]] = -1;
        }
        for (var e = 0; e < entries; e++)
        {
            if (groupOf[e] >= 0)
                positions[cursor[groupOf[e]]++] = e;
        }
    }

    /// <summary>Copies the groups of the last <see cref="Build"/> to the backend (one copy).</summary>
    public void Upload() => kernels.CopyFromHost<int>(packed, packedBuffer);

    public void Dispose() => packedBuffer.Dispose();
}
