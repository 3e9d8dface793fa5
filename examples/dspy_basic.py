"""DSPy seed example 1: stream the `answer` field of `question->answer` (async).

Run: python examples/dspy_basic.py   (no key needed: see dspy_engine.py)
"""
import dspy_engine

dspy_engine.start()

# ---- the seed's code; only the import changed ----------------------------------------
import os
import lazystream as dspy
os.environ["OPENAI_API_KEY"] = "your_api_key"
dspy.configure(lm=dspy.LM("openai/gpt-4o-mini"))
predict = dspy.Predict("question->answer")
# Enable streaming for the 'answer' field
stream_predict = dspy.streamify(
    predict,
    stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")],
)

import asyncio
async def read_output_stream():
    output_stream = stream_predict(question="Why did a chicken cross the kitchen?")
    async for chunk in output_stream:
        print(chunk)
asyncio.run(read_output_stream())
