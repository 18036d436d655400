# One image for every labloop service; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY workers ./workers
RUN pip install --no-cache-dir .
# the services run as the lab staff's user, so files they write on the host are theirs
ARG LABLOOP_UID=1000
ARG LABLOOP_GID=1000
RUN groupadd --gid "$LABLOOP_GID" labloop \
    && useradd --uid "$LABLOOP_UID" --gid "$LABLOOP_GID" --home-dir /lab --create-home labloop
USER labloop
ENV LABLOOP_HOME=/lab
VOLUME ["/lab"]
ENTRYPOINT ["labloop"]
