"""DSPy seed example 2: tell the chunk types apart (StreamResponse vs the final Prediction).

Run: python examples/dspy_chunk_types.py   (no key needed: see dspy_engine.py)
"""
import dspy_engine

dspy_engine.start()

# ---- set-up from seed example 1 -------------------------------------------------------
import os
import lazystream as dspy
os.environ["OPENAI_API_KEY"] = "your_api_key"
dspy.configure(lm=dspy.LM("openai/gpt-4o-mini"))
predict = dspy.Predict("question->answer")
stream_predict = dspy.streamify(
    predict,
    stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")],
)

# ---- the seed's code; only the import changed ----------------------------------------
# (As in the seed, read_output_stream() keeps the Prediction in return_value but does not
# return it, so the last line prints "Final output:  None".)
import asyncio
async def read_output_stream():
    output_stream = stream_predict(question="Why did a chicken cross the kitchen?")
    async for chunk in output_stream:
        return_value = None
        if isinstance(chunk, dspy.streaming.StreamResponse):
            print(f"Output token of field {chunk.signature_field_name}: {chunk.chunk}")
        elif isinstance(chunk, dspy.Prediction):
            return_value = chunk
program_output = asyncio.run(read_output_stream())
print("Final output: ", program_output)
