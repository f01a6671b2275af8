using KvSharp.Server.Hosting;
using KvSharp.Server.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace KvSharp.Server.Chat;

/// <summary>
/// llama-server's <c>POST /apply-template</c>: the prompt text the served chat template makes of the messages (BOS and
/// a final EOS left to the tokenizer, as llama-server returns it), without generating.
/// </summary>
internal static class ApplyTemplateEndpoint
{
    public static void Map(IEndpointRouteBuilder routes) => routes.MapPost("/apply-template", Handle);

    private static async Task Handle(HttpContext context)
    {
        var served = context.RequestServices.GetRequiredService<EngineService>();
        var body = await JsonBody.ReadAsync(context.Request, ServerJson.Default.ApplyTemplateRequest);
        var tools = ChatTools.Of(new ChatCompletionRequest { Tools = body.Tools, ToolChoice = body.ToolChoice }, served.ChatTemplate);
        bool generationPrompt = body.AddGenerationPrompt != false;
        var variables = ChatTemplateVariables.Of(tools, body.ChatTemplateKwargs, body.ReasoningEffort);
        var rendered = ChatPrompt.Render(served.ChatTemplate, ChatPrompt.Messages(body.Messages), generationPrompt, served.Model.Tokenizer, variables);
        // A forced call's reply starts with its opening: the prompt the model goes on from holds it.
        if (generationPrompt && tools?.Forced is { } forced) rendered = forced.Begin(rendered).Prompt;
        await context.Response.WriteAsJsonAsync(new ApplyTemplateResponse(rendered.Prompt), ServerJson.Default.ApplyTemplateResponse, contentType: null, context.RequestAborted);
    }
}

/// <summary>Messages (and tools) as in chat completions; add_generation_prompt defaults to true, as llama-server's.</summary>
public sealed class ApplyTemplateRequest
{
    public List<ChatRequestMessage?>? Messages { get; set; }
    public System.Text.Json.JsonElement Tools { get; set; }
    public System.Text.Json.JsonElement ToolChoice { get; set; }
    public bool? AddGenerationPrompt { get; set; }
    /// <summary>As in chat completions: template variables by name.</summary>
    public System.Text.Json.JsonElement ChatTemplateKwargs { get; set; }
    /// <summary>As in chat completions: OpenAI's reasoning effort, the template variable reasoning_effort.</summary>
    public string? ReasoningEffort { get; set; }
}

public sealed record ApplyTemplateResponse(string Prompt);
