"""Anthropic Messages ↔ OpenAI chat completions translation (no database)."""

import json

from gateway import translate
from gateway.pricing import Usage


def test_a_messages_request_becomes_a_chat_request():
    body = {
        "model": "m",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["END"],
        "metadata": {"user_id": "alice"},
        "tools": [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAA"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": 1}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}],
            },
        ],
    }
    out = translate.request_to_openai(body)
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAA"},
    }
    call = out["messages"][2]["tool_calls"][0]
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "t1",
        "lookup",
        {"q": 1},
    )
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "42"}
    assert (out["max_tokens"], out["stop"], out["user"]) == (50, ["END"], "alice")
    assert out["tools"][0]["function"]["name"] == "lookup"
    assert "stream_options" not in out


def test_a_chat_reply_becomes_a_message_with_anthropic_usage():
    data = {
        "model": "m",
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "content": "Let me look.",
                    "tool_calls": [
                        {"id": "c1", "function": {"name": "lookup", "arguments": '{"q": 2}'}}
                    ],
                },
            }
        ],
    }
    reply = translate.reply_to_anthropic(data, Usage(100, 5, cached_tokens=60), "req_1")
    assert reply["stop_reason"] == "tool_use"
    assert reply["content"][1] == {
        "type": "tool_use",
        "id": "c1",
        "name": "lookup",
        "input": {"q": 2},
    }
    assert reply["usage"] == {
        "input_tokens": 40,
        "output_tokens": 5,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 0,
    }


def test_a_chat_stream_becomes_the_anthropic_event_sequence():
    writer = translate.AnthropicStreamWriter("req_1", "m")
    out = writer.feed({"model": "m", "choices": [{"delta": {"content": "Hi"}}]})
    out += writer.feed({"choices": [{"delta": {}, "finish_reason": "length"}]})
    out += writer.finish(Usage(10, 1))
    events = [line[7:] for line in out.decode().splitlines() if line.startswith("event: ")]
    assert events == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert '"stop_reason": "max_tokens"' in out.decode()
