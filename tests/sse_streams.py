"""Generated event streams for the parser's property tests: the lines and line ends that matter."""

from __future__ import annotations

from hypothesis import strategies as st

sse_lines = st.lists(
    st.one_of(
        st.sampled_from([b"", b"", b"data", b"data:", b": c", b"event: done", b"event: message",
                         b"event:error", b"id: 1", b"id: a\x00b", b"retry: 5", b"retry: x", b"id",
                         b"data: [DONE]", b'data: {"t_send_ns":17,"s":1}', b"\xef\xbb\xbf",
                         b"data: \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", b"data: \xed\xa0\x80\xc0\xaf",
                         b"data: \xf4\x90\x80\x80\xe0\x80\xf0\x8f"]),
        st.sampled_from([  # OpenAI-style chunks and their near misses (the openai mode's scanner)
            b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}',
            b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":{"completion_tokens":3}}',
            b'data: {"choices":[{"delta":{"content" : "x"}}]}', b'data: {"text":"a","usage":{"prompt_tokens":12}}',
            b'data: {"delta":{"content":null}}', b'data: {"tool_calls": [ ]}', b'data: {"tool_calls":[{"id":1}]}',
            b'data: {"reasoning":"r"}', b'data: {"x":"\\"content\\":\\"y"}',
            b'data: {"usage":{"completion_tokens":1234567890123456789}}', b'data: "content":"',
            b'data: {"usage":{"prompt_tokens":7,"completion_tokens":41}}',
            b'data: {"choices":[{"delta":{},"finish_reason":"length"}]}', b'data: {"finish_reason":null}',
            b'data: {"error":{"message":"overloaded","code":503}}', b'data: {"object":"error","message":"m"}',
            b'data: {"error":null}', b'data: {"object" :"errors"}', b'data: {"x":"\\"finish_reason\\":\\"stop"}',
        ]),
        st.binary(max_size=12).map(lambda b: b"data: " + b),
        st.binary(max_size=24),
    ),
    max_size=30,
)
line_ends = st.sampled_from([b"\n", b"\r", b"\r\n"])


@st.composite
def streams(draw) -> bytes:
    """A stream start (none, a BOM, half a BOM), lines with mixed line ends, an unfinished tail."""
    head = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xef\xbb"]))
    body = b"".join(line + draw(line_ends) for line in draw(sse_lines))
    return head + body + draw(st.binary(max_size=5))
