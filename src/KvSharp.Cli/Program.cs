using System.CommandLine;
using KvSharp.Cli;

var root = new RootCommand("kvsharp — run LLMs in pure C#, with the KV cache in plain view")
{
    RunCommand.Create(),
    InspectCommand.Create(),
    TokenizeCommand.Create(),
    LogitsCommand.Create(),
};
return root.Parse(args).Invoke();
