# One image for every labloop service; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY workers ./workers
RUN pip install --no-cache-dir .
ENV LABLOOP_HOME=/lab
VOLUME ["/lab"]
ENTRYPOINT ["labloop"]
