namespace KvSharp.Server.Errors;

/// <summary>OpenAI's error body: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
public sealed record ErrorBody(ErrorDetail Error)
{
    public static ErrorBody From(ApiError e) => new(new ErrorDetail(e.Message, e.Type, e.Param, e.Code));
}

public sealed record ErrorDetail(string Message, string Type, string? Param, string? Code);
