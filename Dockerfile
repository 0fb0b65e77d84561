# sseload in a container: the wheel built from this checkout, the ready scenarios inside it.
#   docker build -t sseload .
#   docker run --rm --network host sseload run                        # the embedded default
#   docker run --rm -v "$PWD/results:/work/results" sseload run openai-chat -H https://...
# On Kubernetes: docs/workers.md.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY sseload ./sseload
COPY scenarios ./scenarios
RUN pip wheel --no-cache-dir --no-deps -w /dist . && python -c "import zipfile, glob; \
    names = zipfile.ZipFile(glob.glob('/dist/*.whl')[0]).namelist(); \
    assert any(n.startswith('sseload/_reader') and n.endswith('.so') for n in names), 'the C reader was not built'"

FROM python:3.11-slim
COPY --from=build /dist /dist
RUN pip install --no-cache-dir /dist/*.whl && rm -rf /dist
WORKDIR /work
# results/<run>/ under /work: mount a volume there to keep them
ENTRYPOINT ["sseload"]
CMD ["run"]
