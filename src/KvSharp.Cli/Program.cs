Console.WriteLine("kvsharp");
