global using Xunit;
global using KvSharp.Tests;
