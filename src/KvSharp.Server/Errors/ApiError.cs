namespace KvSharp.Server.Errors;

/// <summary>
/// A request the server refuses, with everything OpenAI's error shape carries: the HTTP status, the error type, the
/// request field at fault and a machine-readable code. Thrown anywhere in a handler; <see cref="ErrorHandling"/>
/// writes it as <c>{"error": {"message", "type", "param", "code"}}</c>.
/// </summary>
public sealed class ApiError(int status, string message, string type, string? param, string? code) : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    public const string InvalidRequest = "invalid_request_error";

    /// <summary>A field outside its range or not one of its values.</summary>
    public static ApiError InvalidValue(string param, string message) => new(400, message, InvalidRequest, param, "invalid_value");

    /// <summary>A field of the wrong JSON type.</summary>
    public static ApiError InvalidType(string param, string message) => new(400, message, InvalidRequest, param, "invalid_type");

    public static ApiError Missing(string param) => new(400, $"'{param}' is required", InvalidRequest, param, "missing_required_parameter");

    public static ApiError Unsupported(string param, string message) => new(400, message, InvalidRequest, param, "unsupported_parameter");

    /// <param name="param">The field that holds the prompt: "prompt" for completions, "messages" for chat (as OpenAI names them).</param>
    public static ApiError ContextLengthExceeded(string message, string param) => new(400, message, InvalidRequest, param, "context_length_exceeded");

    public static ApiError ModelNotFound(string requested, string served) =>
        new(400, $"The model '{requested}' does not exist; this server serves '{served}'", InvalidRequest, "model", "model_not_found");

    public static ApiError Unauthorized(bool keyGiven) => new(401,
        keyGiven ? "Incorrect API key provided" : "No API key provided: send 'Authorization: Bearer KEY'",
        InvalidRequest, null, "invalid_api_key");

    public static ApiError QueueFull(int limit) => new(429,
        $"The server is busy: {limit} requests are already running or queued (--max-running + --max-queue); retry later",
        "rate_limit_error", null, "rate_limit_exceeded");

    public static ApiError ShuttingDown() => new(503, "The server is shutting down", "server_error", null, "server_shutting_down");
}
