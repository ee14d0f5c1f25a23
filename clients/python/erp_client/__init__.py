"""A thin typed client over the generated stubs: channels with deadlines and retries."""
from erp_client.channel import DEFAULT_TIMEOUT_SECONDS, open_channel, service_config
from erp_client.client import ErpClient

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "ErpClient", "open_channel", "service_config"]
