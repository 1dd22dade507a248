using System.Reflection;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using TwoTower.Config;
using TwoTower.Kernels;
using TwoTower.Kernels.Ilgpu;
using TwoTower.Kernels.Simd;
using TwoTower.Model;

namespace TwoTower.Tests.Kernels;

/// <summary>One ILGPU CPU-accelerator context for every ILGPU test class (context creation and kernel compiles are slow).</summary>
public sealed class IlgpuCpu : IDisposable
{
    public const string Collection = "ILGPU CPU accelerator";
    public IlgpuKernels Kernels { get; } = Backend.CreateIlgpu("ilgpu-cpu", out _)!;
    public void Dispose() => Kernels.Dispose();
}

[CollectionDefinition(IlgpuCpu.Collection)]
public sealed class IlgpuCpuCollection : ICollectionFixture<IlgpuCpu>;

/// <summary>The ILGPU backend as a whole: a short training against SIMD, and every kernel compiled for the GPUs CI does not have.</summary>
[Collection(IlgpuCpu.Collection)]
public class IlgpuBackendTests(IlgpuCpu ilgpu)
{
    /// <summary>Without history, and with a history pooled through the shared article table (the bag ops, the zeroed rows, the union of touched rows).</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    public void ShortTrainingOnIlgpuCpuEndsWithinToleranceOfTheSimdRun(int historyLength)
    {
        var config = TrainingTests.Config("train.batch_size=64", $"features.query.history.length={historyLength}", "features.query.history.pooling=recency");
        var data = TrainingTests.TinyData(320, seed: 11);
        if (historyLength > 0)
            data = TrainingTests.WithHistory(data, historyLength);
        float[] Train(IKernels kernels, out double loss)
        {
            var model = TwoTowerModel.Create(config, TrainingTests.TinyVocabulary);
            model.Initialize(config.Get(ConfigSchema.Seed));
            using var trainer = new Trainer(model, kernels, TrainOptions.From(config), data, "article_id");
            trainer.RunEpoch(1);
            loss = trainer.RunEpoch(2).LossPerExample;   // a second epoch: learning rates appended on the device, batches reshuffled, host copies refreshed
            return model.Variables.SelectMany(v => v.Value).ToArray();
        }
        var onGpu = Train(ilgpu.Kernels, out var gpuLoss);
        var onCpu = Train(new SimdKernels(2), out var cpuLoss);
        Assert.Equal(cpuLoss, gpuLoss, cpuLoss * 1e-4);
        // Adam moves each weight by about ±lr per step whatever the gradient's size, so a gradient near
        // zero whose last bits differ can flip one step: a few weights differ by up to a few lr, the rest agree.
        var diffs = onGpu.Zip(onCpu).Select(p => Math.Abs(p.First - p.Second)).Order().ToArray();
        Assert.True(diffs[(int)(diffs.Length * 0.99)] < 2e-3, $"99th percentile difference {diffs[(int)(diffs.Length * 0.99)]}");
        Assert.True(diffs[^1] < 3 * 0.01, $"largest difference {diffs[^1]}");
    }

    /// <summary>
    /// Every kernel compiles for the GPUs no CI machine has: PTX for Hopper (H100/H200) and OpenCL C.
    /// An unsupported intrinsic (MathF.Log without ILGPU.Algorithms cost a device run once) fails here.
    /// </summary>
    [Fact]
    public void EveryKernelCompilesToPtxForHopperAndToOpenCl()
    {
        var kernels = typeof(IlgpuKernels).GetMethods(BindingFlags.NonPublic | BindingFlags.Static).Where(m => m.Name.EndsWith("Kernel")).ToArray();
        Assert.True(kernels.Length >= 20, $"{kernels.Length} kernels found");
        using var context = Context.Create(b => b.Cuda().OpenCL().EnableAlgorithms());
        using var ptx = new PTXBackend(context, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!);
        using var openCl = new CLBackend(context, new CLCapabilityContext(false, true, true, true, true), CLDeviceVendor.Nvidia, CLCVersion.CL20);
        foreach (var kernel in kernels)
        {
            var entry = EntryPointDescription.FromImplicitlyGroupedKernel(kernel);
            var compiled = (PTXCompiledKernel)ptx.Compile(entry, default);
            Assert.Contains(".entry", compiled.PTXAssembly);
            var source = (CLCompiledKernel)openCl.Compile(entry, default);
            Assert.Contains("kernel", source.Source);
        }
    }
}
