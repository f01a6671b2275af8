namespace KvSharp.Cache;

/// <summary>What a sequence does when its next token would not fit in its context.</summary>
public enum ContextOverflow
{
    /// <summary>Generation ends with <c>FinishReason.ContextFull</c>.</summary>
    Stop,

    /// <summary>
    /// llama.cpp's context shift (<see cref="ContextShift"/>): the first positions stay, the oldest ones after them are
    /// discarded, the rest move down with their keys re-rotated, and generation goes on.
    /// </summary>
    Shift,
}
