"""Free text from a person -> a validated robot command, on the default model, offline.

    python examples/robot_command.py "turn the elbow thirty degrees to the left"
    python examples/robot_command.py            # reads lines from stdin, one command per line

The reply is decoded under the command's JSON Schema (edgegen structured output), so it always
parses and always validates: the app never has to handle malformed JSON. What it still has to
handle is a model that misunderstood: here, by showing the command before "executing" it.
A reply cut short by max_tokens (finish_reason "length") is refused, not executed.
"""
from __future__ import annotations

import json
import sys

import edgegen

COMMAND = {
    "type": "object",
    "properties": {
        "action": {"enum": ["move", "grip", "release", "home", "stop"]},
        "joint": {"enum": ["base", "shoulder", "elbow", "wrist", "gripper", "none"]},
        "degrees": {"type": "integer", "minimum": -180, "maximum": 180},
        "speed": {"enum": ["slow", "normal", "fast"]},
    },
    "required": ["action", "joint", "degrees", "speed"],
    "additionalProperties": False,
}
SYSTEM = ("You control a robot arm. Turn the user's request into one JSON command. Joints: base, "
          "shoulder, elbow, wrist, gripper. Left is negative degrees, right is positive. Use joint "
          '"none" and 0 degrees for home and stop.')
FORMAT = {"type": "json_schema", "json_schema": {"name": "robot_command", "schema": COMMAND}}


def to_command(llm: edgegen.LLM, text: str) -> dict:
    reply = llm.chat([{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
                     response_format=FORMAT, temperature=0, max_tokens=64)
    if reply.finish_reason != "stop":
        raise RuntimeError(f"no complete command (finish_reason={reply.finish_reason})")
    return json.loads(reply.text)  # valid by construction


def main() -> None:
    llm = edgegen.load("smollm2")
    requests = sys.argv[1:] or (line.strip() for line in sys.stdin if line.strip())
    for text in requests:
        command = to_command(llm, text)
        print(f"{text!r} -> {json.dumps(command)}")


if __name__ == "__main__":
    main()
