from tollway.cli.main import app

app(prog_name="tollway")
