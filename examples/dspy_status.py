"""DSPy seed example 5: status messages around a Tool, and ChainOfThought's reasoning.

Run: python examples/dspy_status.py   (no key needed: see dspy_engine.py)
"""
import dspy_engine

dspy_engine.start()

# ---- the seed's code; only the import changed ----------------------------------------
# (As in the seed, MyStatusMessageProvider is defined but not passed to streamify, so the
# default provider's messages appear. Pass status_message_provider=MyStatusMessageProvider()
# to see its messages instead; its two-argument tool_end_status_message works too.)
import asyncio
import lazystream as dspy
lm = dspy.LM("openai/gpt-4o-mini", cache=False)
dspy.settings.configure(lm=lm)
class MyModule(dspy.Module):
    def __init__(self):
        super().__init__()
        self.tool = dspy.Tool(lambda x: 2 * x, name="double_the_number")
        self.predict = dspy.ChainOfThought("num1, num2->sum")
    def forward(self, num, **kwargs):
        num2 = self.tool(x=num)
        return self.predict(num1=num, num2=num2)
class MyStatusMessageProvider(dspy.streaming.StatusMessageProvider):
    def tool_start_status_message(self, instance, inputs):
        return f"Calling Tool {instance.name} with inputs {inputs}..."
    def tool_end_status_message(self, instance, outputs):
        return f"Tool finished with output: {outputs}!"
predict = MyModule()
stream_listeners = [
    # dspy.ChainOfThought has a built-in output field called "reasoning".
    dspy.streaming.StreamListener(signature_field_name="reasoning"),
]
stream_predict = dspy.streamify(
    predict,
    stream_listeners=stream_listeners,
)
async def read_output_stream():
    output = stream_predict(num=3)
    return_value = None
    async for chunk in output:
        if isinstance(chunk, dspy.streaming.StreamResponse):
            print(chunk)
        elif isinstance(chunk, dspy.Prediction):
            return_value = chunk
        elif isinstance(chunk, dspy.streaming.StatusMessage):
            print(chunk)
    return return_value
program_output = asyncio.run(read_output_stream())
print("Final output: ", program_output)
