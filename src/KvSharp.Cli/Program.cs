return KvSharp.Cli.CliApp.Run(args);
