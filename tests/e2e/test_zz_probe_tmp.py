import time
import openai
from tests.e2e.conftest import Stage, CHANNEL, CHAT_MODELS, EMBEDDING_MODEL, UNPRICED_MODEL
from tollway.admin import channels, prices

def test_probe(stage: Stage):
    extra = ["stall-5000-gpt", "drip-4000-gpt"]
    channels.update_channel(stage.engine, stage.gateway.box, CHANNEL, models=[*CHAT_MODELS, EMBEDDING_MODEL, UNPRICED_MODEL, *extra])
    for m in extra:
        prices.set_price(stage.engine, m, input_usd_per_mtok="2", output_usd_per_mtok="8")
    time.sleep(0.5)
    a = stage.account()
    c = stage.client(a.key)
    for m in extra:
        raw = c.chat.completions.with_raw_response.create(model=m, messages=[{"role":"user","content":"x"}], stream=True)
        try:
            for ch in raw.parse(): print(ch.choices[0].delta.content if ch.choices else ch)
        except openai.APIError as e:
            print("EXC", type(e), e.body)
        r = stage.log_row(raw.headers["X-Request-Id"])
        print(r["status_code"], r["error_code"], r["failure_reason"], r["charged"], r["charge_reason"])
    print(stage.server_output()[-5000:])
