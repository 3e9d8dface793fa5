"""The LazyLLM seed's streaming weather agent, on lazystream (only the imports changed).

    python examples/weather_agent.py            # both forms: streaming, then streaming + traces
    python examples/weather_agent.py --stream   # the first form only
    python examples/weather_agent.py --trace    # the second form only

With no ``OPENAI_API_KEY`` it runs against the bundled scripted engine (no network), whose
replies come from ``WeatherPolicy`` (``examples/weather_policy.py``): a documented
rule-based stand-in that calls ``get_current_weather`` for each city the question names
and composes the answer from the tool results. With ``OPENAI_API_KEY`` set (and optionally
``OPENAI_BASE_URL`` and ``LAZYSTREAM_MODEL``, default ``gpt-4o-mini``) it talks to that
model instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# ---------------------------------------------------------------------------------------
# The seed's code. Only `lazyllm` imports became `lazystream` imports.
# ---------------------------------------------------------------------------------------
from typing import Literal  # noqa: E402
import json  # noqa: E402
from lazystream.tools import fc_register  # noqa: E402


@fc_register("tool")
def get_current_weather(location: str, unit: Literal["fahrenheit", "celsius"]="fahrenheit"):
    """
    Get the current weather in a given location
    Args:
        location (str): The city and state, e.g. San Francisco, CA.
        unit (str): The temperature unit to use. Infer this from the users location.
    """
    if 'tokyo' in location.lower():
        return json.dumps({'location': 'Tokyo', 'temperature': '10', 'unit': 'celsius'})
    elif 'san francisco' in location.lower():
        return json.dumps({'location': 'San Francisco', 'temperature': '72', 'unit': 'fahrenheit'})
    elif 'paris' in location.lower():
        return json.dumps({'location': 'Paris', 'temperature': '22', 'unit': 'celsius'})
    elif 'beijing' in location.lower():
        return json.dumps({'location': 'Beijing', 'temperature': '90', 'unit': 'fahrenheit'})
    else:
        return json.dumps({'location': location, 'temperature': 'unknown'})


@fc_register("tool")
def get_n_day_weather_forecast(location: str, num_days: int, unit: Literal["celsius", "fahrenheit"]='fahrenheit'):
    """
    Get an N-day weather forecast
    Args:
        location (str): The city and state, e.g. San Francisco, CA.
        num_days (int): The number of days to forecast.
        unit (Literal['celsius', 'fahrenheit']): The temperature unit to use. Infer this from the users location.
    """
    if 'tokyo' in location.lower():
        return json.dumps({'location': 'Tokyo', 'temperature': '10', 'unit': 'celsius', "num_days": num_days})
    elif 'san francisco' in location.lower():
        return json.dumps({'location': 'San Francisco', 'temperature': '75', 'unit': 'fahrenheit', "num_days": num_days})
    elif 'paris' in location.lower():
        return json.dumps({'location': 'Paris', 'temperature': '25', 'unit': 'celsius', "num_days": num_days})
    elif 'beijing' in location.lower():
        return json.dumps({'location': 'Beijing', 'temperature': '85', 'unit': 'fahrenheit', "num_days": num_days})
    else:
        return json.dumps({'location': location, 'temperature': 'unknown'})


def stream_only():
    """The seed's first form: the answer tokens stream to FileSystemQueue()."""
    import lazystream as lazyllm
    from lazystream.tools import FunctionCallAgent

    llm = lazyllm.OnlineChatModule(stream=True)
    tools = ["get_current_weather", "get_n_day_weather_forecast"]
    agent = FunctionCallAgent(llm, tools)

    query = "What's the weather like today in celsius in Tokyo and Paris."
    with lazyllm.ThreadPoolExecutor(1) as executor:
        future = executor.submit(agent, query)
        while True:
            if value := lazyllm.FileSystemQueue().dequeue():
                print(f"output: {''.join(value)}")
            elif future.done():   # lazystream's futures are done only once the tail is read
                break
    print(f"ret: {future.result()}")


def stream_and_trace():
    """The seed's second form: answer tokens plus the intermediate results from lazy_trace."""
    import lazystream as lazyllm
    from lazystream.tools import FunctionCallAgent

    llm = lazyllm.OnlineChatModule(stream=True, return_trace=True)
    tools = ["get_current_weather", "get_n_day_weather_forecast"]
    agent = FunctionCallAgent(llm, tools, return_trace=True)

    query = "What's the weather like today in celsius in Tokyo and Paris."
    with lazyllm.ThreadPoolExecutor(1) as executor:
        future = executor.submit(agent, query)
        while True:
            if value := lazyllm.FileSystemQueue().dequeue():
                print(f"output: {''.join(value)}")
            elif value := lazyllm.FileSystemQueue().get_instance('lazy_trace').dequeue():
                print(f"trace: {''.join(value)}")
            elif future.done():
                break
    print(f"ret: {future.result()}")


# ---------------------------------------------------------------------------------------
# Where the model comes from: a real one when OPENAI_API_KEY is set, else the engine.
# ---------------------------------------------------------------------------------------
def _use_bundled_engine(tokens_per_second: float):
    """Start the scripted engine with the weather policy and point the env at it."""
    from lazystream.engine import Engine
    from weather_policy import WeatherPolicy

    engine = Engine(WeatherPolicy(), tokens_per_second=tokens_per_second)
    os.environ["OPENAI_BASE_URL"] = engine.start()
    os.environ["OPENAI_API_KEY"] = "lazystream-engine"
    os.environ["LAZYSTREAM_MODEL"] = engine.model
    return engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--stream", action="store_true", help="run only the streaming form")
    form.add_argument("--trace", action="store_true", help="run only the streaming + trace form")
    parser.add_argument("--tps", type=float, default=25.0,
                        help="engine pacing in tokens per second (bundled engine only)")
    args = parser.parse_args(argv)

    engine = None
    if os.environ.get("OPENAI_API_KEY"):
        os.environ.setdefault("LAZYSTREAM_MODEL", "gpt-4o-mini")
        print(f"# model: {os.environ['LAZYSTREAM_MODEL']} at "
              f"{os.environ.get('OPENAI_BASE_URL', 'https://api.openai.com/v1')}")
    else:
        engine = _use_bundled_engine(args.tps)
        print("# model: the bundled scripted engine with examples/weather_policy.py "
              "(set OPENAI_API_KEY to use a real model)")
    import lazystream
    # One session for both forms, ended (and so followable to its end) when they finish.
    with lazystream.session() as sid:
        print(f"# session {sid}: follow it from another terminal with `lazystream tail {sid} --text`; "
              f"summarize it afterwards with `lazystream show {sid}`", flush=True)
        try:
            if not args.trace:
                print("# --- streaming ---")
                stream_only()
            if not args.stream:
                print("# --- streaming + return_trace ---")
                stream_and_trace()
        finally:
            if engine is not None:
                engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
