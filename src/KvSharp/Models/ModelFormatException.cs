namespace KvSharp.Models;

/// <summary>A model file's contents do not describe a model we can run: the message names the file, tensor or key.</summary>
public sealed class ModelFormatException : FormatException
{
    public ModelFormatException(string message) : base(message) { }
}
