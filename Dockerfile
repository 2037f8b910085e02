# villagewatch services (ingest, edge, alerts) for docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY villagewatch ./villagewatch
COPY app ./app
COPY simulator ./simulator
COPY portal ./portal
COPY edge ./edge
COPY ingest ./ingest
COPY rules ./rules
COPY alerts ./alerts
COPY dashboards ./dashboards
COPY firmware_tools ./firmware_tools
COPY reports ./reports
COPY sites ./sites
COPY broker_config ./broker_config
RUN pip install --no-cache-dir .
ENV VW_SITES=/app/sites VW_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["villagewatch"]
