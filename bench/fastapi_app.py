"""The FastAPI app of bench/python-vs-peers.sh: / plain text, /json a JSON
object."""
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get('/', response_class=PlainTextResponse)
async def root():
    return 'Hello, World!'


@app.get('/json')
async def json():
    return {'message': 'Hello, World!'}
