# Placeholder until the image issue: installs regwatch; /opt/resource/{check,in,out} come later.
FROM python:3.11-slim
COPY . /src
RUN python -m pip install --no-cache-dir '/src[aws,azure]' && rm -rf /src
ENTRYPOINT ["regwatch"]
