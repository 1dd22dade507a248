using TwoTower.Build;

// dotnet run --project build -- --target=<Task> [--config=pipeline.yaml] [--set key=value]... [--force] [--resume]
return await CakeHost.RunAsync(args, cake => new BuildContext(cake), defaultTarget: "Package");
