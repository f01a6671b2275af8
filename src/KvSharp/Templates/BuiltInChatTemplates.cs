namespace KvSharp.Templates;

/// <summary>
/// Chat templates by name for `--chat-template NAME`: the real template texts the models publish (Hugging Face
/// tokenizer_config.json, as llama.cpp's tests and models/templates carry them), and "plain", KvSharp's fallback
/// for models that have none.
/// </summary>
internal static class BuiltInChatTemplates
{
    private sealed record Entry(string Name, string Origin, string Source, string[] StopStrings);

    private static readonly Entry[] Entries =
    [
        // ChatML (teknium/OpenHermes-2.5-Mistral-7B; Qwen, Yi and many fine-tunes use the same turns)
        new("chatml", "ChatML (teknium/OpenHermes-2.5-Mistral-7B; Qwen, Yi and many fine-tunes use the same turns)",
            """
            {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
            """,
            []),
        // Qwen/Qwen2.5-7B-Instruct (ChatML with a default system prompt and tool calls)
        new("qwen2.5", "Qwen/Qwen2.5-7B-Instruct (ChatML with a default system prompt and tool calls)",
            """
            {%- if tools %}
                {{- '<|im_start|>system\n' }}
                {%- if messages[0]['role'] == 'system' %}
                    {{- messages[0]['content'] }}
                {%- else %}
                    {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
                {%- endif %}
                {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
                {%- for tool in tools %}
                    {{- "\n" }}
                    {{- tool | tojson }}
                {%- endfor %}
                {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
            {%- else %}
                {%- if messages[0]['role'] == 'system' %}
                    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
                {%- else %}
                    {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
                {%- endif %}
            {%- endif %}
            {%- for message in messages %}
                {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
                    {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
                {%- elif message.role == "assistant" %}
                    {{- '<|im_start|>' + message.role }}
                    {%- if message.content %}
                        {{- '\n' + message.content }}
                    {%- endif %}
                    {%- for tool_call in message.tool_calls %}
                        {%- if tool_call.function is defined %}
                            {%- set tool_call = tool_call.function %}
                        {%- endif %}
                        {{- '\n<tool_call>\n{"name": "' }}
                        {{- tool_call.name }}
                        {{- '", "arguments": ' }}
                        {{- tool_call.arguments | tojson }}
                        {{- '}\n</tool_call>' }}
                    {%- endfor %}
                    {{- '<|im_end|>\n' }}
                {%- elif message.role == "tool" %}
                    {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
                        {{- '<|im_start|>user' }}
                    {%- endif %}
                    {{- '\n<tool_response>\n' }}
                    {{- message.content }}
                    {{- '\n</tool_response>' }}
                    {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
                        {{- '<|im_end|>\n' }}
                    {%- endif %}
                {%- endif %}
            {%- endfor %}
            {%- if add_generation_prompt %}
                {{- '<|im_start|>assistant\n' }}
            {%- endif %}

            """,
            []),
        // meta-llama/Llama-2-7b-chat-hf
        new("llama2", "meta-llama/Llama-2-7b-chat-hf",
            """
            {% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}
            """,
            []),
        // meta-llama/Meta-Llama-3-8B-Instruct (as first published: always ends with the assistant header)
        new("llama3", "meta-llama/Meta-Llama-3-8B-Instruct (as first published: always ends with the assistant header)",
            """
            {% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>

            '+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>

            ' }}
            """,
            []),
        // meta-llama/Llama-3.1-8B-Instruct (tools, the knowledge-cutoff and today's-date system header)
        new("llama3.1", "meta-llama/Llama-3.1-8B-Instruct (tools, the knowledge-cutoff and today's-date system header)",
            """
            {{- bos_token }}
            {%- if custom_tools is defined %}
                {%- set tools = custom_tools %}
            {%- endif %}
            {%- if not tools_in_user_message is defined %}
                {%- set tools_in_user_message = true %}
            {%- endif %}
            {%- if not date_string is defined %}
                {%- set date_string = "26 Jul 2024" %}
            {%- endif %}
            {%- if not tools is defined %}
                {%- set tools = none %}
            {%- endif %}

            {#- This block extracts the system message, so we can slot it into the right place. #}
            {%- if messages[0]['role'] == 'system' %}
                {%- set system_message = messages[0]['content']|trim %}
                {%- set messages = messages[1:] %}
            {%- else %}
                {%- set system_message = "" %}
            {%- endif %}

            {#- System message + builtin tools #}
            {{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
            {%- if builtin_tools is defined or tools is not none %}
                {{- "Environment: ipython\n" }}
            {%- endif %}
            {%- if builtin_tools is defined %}
                {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
            {%- endif %}
            {{- "Cutting Knowledge Date: December 2023\n" }}
            {{- "Today Date: " + date_string + "\n\n" }}
            {%- if tools is not none and not tools_in_user_message %}
                {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
                {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
                {{- "Do not use variables.\n\n" }}
                {%- for t in tools %}
                    {{- t | tojson(indent=4) }}
                    {{- "\n\n" }}
                {%- endfor %}
            {%- endif %}
            {{- system_message }}
            {{- "<|eot_id|>" }}

            {#- Custom tools are passed in a user message with some extra guidance #}
            {%- if tools_in_user_message and not tools is none %}
                {#- Extract the first user message so we can plug it in here #}
                {%- if messages | length != 0 %}
                    {%- set first_user_message = messages[0]['content']|trim %}
                    {%- set messages = messages[1:] %}
                {%- else %}
                    {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
            {%- endif %}
                {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
                {{- "Given the following functions, please respond with a JSON for a function call " }}
                {{- "with its proper arguments that best answers the given prompt.\n\n" }}
                {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
                {{- "Do not use variables.\n\n" }}
                {%- for t in tools %}
                    {{- t | tojson(indent=4) }}
                    {{- "\n\n" }}
                {%- endfor %}
                {{- first_user_message + "<|eot_id|>"}}
            {%- endif %}

            {%- for message in messages %}
                {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
                    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
                {%- elif 'tool_calls' in message %}
                    {%- if not message.tool_calls|length == 1 %}
                        {{- raise_exception("This model only supports single tool-calls at once!") }}
                    {%- endif %}
                    {%- set tool_call = message.tool_calls[0].function %}
                    {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
                        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
                        {{- "<|python_tag|>" + tool_call.name + ".call(" }}
                        {%- for arg_name, arg_val in tool_call.arguments | items %}
                            {{- arg_name + '="' + arg_val + '"' }}
                            {%- if not loop.last %}
                                {{- ", " }}
                            {%- endif %}
                            {%- endfor %}
                        {{- ")" }}
                    {%- else  %}
                        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
                        {{- '{"name": "' + tool_call.name + '", ' }}
                        {{- '"parameters": ' }}
                        {{- tool_call.arguments | tojson }}
                        {{- "}" }}
                    {%- endif %}
                    {%- if builtin_tools is defined %}
                        {#- This means we're in ipython mode #}
                        {{- "<|eom_id|>" }}
                    {%- else %}
                        {{- "<|eot_id|>" }}
                    {%- endif %}
                {%- elif message.role == "tool" or message.role == "ipython" %}
                    {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
                    {%- if message.content is mapping or message.content is iterable %}
                        {{- message.content | tojson }}
                    {%- else %}
                        {{- message.content }}
                    {%- endif %}
                    {{- "<|eot_id|>" }}
                {%- endif %}
            {%- endfor %}
            {%- if add_generation_prompt %}
                {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
            {%- endif %}

            """,
            []),
        // mistralai/Mistral-7B-Instruct-v0.2 (mistral-common's v1 template, with a system prompt)
        new("mistral", "mistralai/Mistral-7B-Instruct-v0.2 (mistral-common's v1 template, with a system prompt)",
            """
            {%- if messages[0]['role'] == 'system' %}
                {%- set system_message = messages[0]['content'] %}
                {%- set loop_messages = messages[1:] %}
            {%- else %}
                {%- set loop_messages = messages %}
            {%- endif %}

            {{- bos_token }}
            {%- for message in loop_messages %}
                {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
                    {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
                {%- endif %}
                {%- if message['role'] == 'user' %}
                    {%- if loop.first and system_message is defined %}
                        {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
                    {%- else %}
                        {{- ' [INST] ' + message['content'] + ' [/INST]' }}
                    {%- endif %}
                {%- elif message['role'] == 'assistant' %}
                    {{- ' ' + message['content'] + eos_token}}
                {%- else %}
                    {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
                {%- endif %}
            {%- endfor %}

            """,
            []),
        // google/gemma-2-2b-it (no system role: the system text joins the first user turn)
        new("gemma", "google/gemma-2-2b-it (no system role: the system text joins the first user turn)",
            """
            {{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '
            ' + message['content'] | trim + '<end_of_turn>
            ' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model
            '}}{% endif %}
            """,
            []),
        // microsoft/Phi-3.5-mini-instruct
        new("phi3", "microsoft/Phi-3.5-mini-instruct",
            """
            {% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>
            ' + message['content'] + '<|end|>
            '}}{% elif message['role'] == 'user' %}{{'<|user|>
            ' + message['content'] + '<|end|>
            '}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>
            ' + message['content'] + '<|end|>
            '}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>
            ' }}{% else %}{{ eos_token }}{% endif %}
            """,
            []),
        // HuggingFaceH4/zephyr-7b-beta
        new("zephyr", "HuggingFaceH4/zephyr-7b-beta",
            """
            {% for message in messages %}
            {% if message['role'] == 'user' %}
            {{ '<|user|>
            ' + message['content'] + eos_token }}
            {% elif message['role'] == 'system' %}
            {{ '<|system|>
            ' + message['content'] + eos_token }}
            {% elif message['role'] == 'assistant' %}
            {{ '<|assistant|>
            '  + message['content'] + eos_token }}
            {% endif %}
            {% if loop.last and add_generation_prompt %}
            {{ '<|assistant|>' }}
            {% endif %}
            {% endfor %}
            """,
            []),
        // deepseek-ai/DeepSeek-V2-Chat
        new("deepseek", "deepseek-ai/DeepSeek-V2-Chat",
            """
            {% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '

            ' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + '

            ' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}
            """,
            []),
        // deepseek-ai/DeepSeek-R1-Distill-Llama-8B
        new("deepseek-r1", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
            """
            {% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\n'}}{% endif %}
            """,
            []),
        // CohereForAI/c4ai-command-r-plus
        new("command-r", "CohereForAI/c4ai-command-r-plus",
            """
            {{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% elif false == true %}{% set loop_messages = messages %}{% set system_message = 'You are Command-R, a brilliant, sophisticated, AI-assistant trained to assist human users by providing thorough responses. You are trained by Cohere.' %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% if system_message != false %}{{ '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>' + system_message + '<|END_OF_TURN_TOKEN|>' }}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% set content = message['content'] %}{% if message['role'] == 'user' %}{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% elif message['role'] == 'assistant' %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>'  + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' }}{% endif %}
            """,
            []),
        // eachadea/vicuna-13b-1.1
        new("vicuna", "eachadea/vicuna-13b-1.1",
            """
            {%- for message in messages %}{%- if message['role'] == 'system' -%}{{- '' + message['content'] + '

            ' -}}{%- else -%}{%- if message['role'] == 'user' -%}{{-'USER: ' + message['content'] + '
            '-}}{%- else -%}{{-'ASSISTANT: ' + message['content'] + '</s>
            ' -}}{%- endif -%}{%- endif -%}{%- endfor -%}{%- if add_generation_prompt -%}{{-'ASSISTANT:'-}}{%- endif -%}
            """,
            []),
        // KvSharp's fallback for models without a template: 'User: ...' / 'Assistant: ...' lines, stopping at the next 'User:'
        new("plain", "KvSharp's fallback for models without a template: 'User: ...' / 'Assistant: ...' lines, stopping at the next 'User:'",
            """
            {#- KvSharp's fallback for a model without a chat template: a plain transcript a base model can continue. -#}
            {%- for message in messages %}
                {%- if message['role'] == 'system' %}
                    {{- message['content'] | trim }}{{ '\n\n' }}
                {%- else %}
                    {{- message['role'] | capitalize }}: {{ message['content'] | trim }}{{ '\n' }}
                {%- endif %}
            {%- endfor %}
            {%- if add_generation_prompt %}Assistant:{% endif %}
            """,
            ["\nUser:"]),
    ];

    public static IReadOnlyList<string> Names { get; } = Entries.Select(e => e.Name).ToArray();

    /// <summary>Where each built-in template comes from, for help texts.</summary>
    public static IReadOnlyList<(string Name, string Origin)> Origins { get; } = Entries.Select(e => (e.Name, e.Origin)).ToArray();

    public static bool TryGet(string name, out string source, out string[] stopStrings)
    {
        foreach (var e in Entries)
        {
            if (!string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase)) continue;
            source = e.Source;
            stopStrings = e.StopStrings;
            return true;
        }
        source = "";
        stopStrings = [];
        return false;
    }
}
