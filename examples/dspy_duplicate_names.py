"""DSPy seed example 4: two predictors with a field of the same name, told apart by
`predict` / `predict_name`.

Run: python examples/dspy_duplicate_names.py   (no key needed: see dspy_engine.py)
"""
import dspy_engine

dspy_engine.start()

# ---- the seed's code; only the import changed ----------------------------------------
# (predict2 is called without `question`: it is left out of the prompt, with a warning.)
import asyncio
import lazystream as dspy
lm = dspy.LM("openai/gpt-4o-mini", cache=False)
dspy.settings.configure(lm=lm)
class MyModule(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict1 = dspy.Predict("question->answer")
        self.predict2 = dspy.Predict("question, answer->answer, score")
    def forward(self, question: str, **kwargs):
        answer = self.predict1(question=question)
        simplified_answer = self.predict2(answer=answer)
        return simplified_answer
predict = MyModule()
stream_listeners = [
    dspy.streaming.StreamListener(
        signature_field_name="answer",
        predict=predict.predict1,
        predict_name="predict1"
    ),
    dspy.streaming.StreamListener(
        signature_field_name="answer",
        predict=predict.predict2,
        predict_name="predict2"
    ),
]
stream_predict = dspy.streamify(
    predict,
    stream_listeners=stream_listeners,
)
async def read_output_stream():
    output = stream_predict(question="why did a chicken cross the kitchen?")
    return_value = None
    async for chunk in output:
        if isinstance(chunk, dspy.streaming.StreamResponse):
            print(chunk)
        elif isinstance(chunk, dspy.Prediction):
            return_value = chunk
    return return_value
program_output = asyncio.run(read_output_stream())
print("Final output: ", program_output)
