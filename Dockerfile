FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY edge ./edge
COPY firmware_sim ./firmware_sim
COPY collector ./collector
COPY calibration ./calibration
COPY api ./api
RUN pip install --no-cache-dir ".[server]"
USER nobody
ENTRYPOINT []
CMD ["luftnett", "--help"]
