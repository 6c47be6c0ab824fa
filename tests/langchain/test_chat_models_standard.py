"""The langchain-tests standard suites for ChatGMSA, on the embedded default model."""

from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from gmsa_integrations.langchain import ChatGMSA
from tests.conftest import load_default_engine


class _ChatGMSASetup:
    @property
    def chat_model_class(self) -> type[ChatGMSA]:
        return ChatGMSA

    @property
    def chat_model_params(self) -> dict:
        return {"engine": load_default_engine()}


class TestChatGMSAUnit(_ChatGMSASetup, ChatModelUnitTests):
    pass


class TestChatGMSAIntegration(_ChatGMSASetup, ChatModelIntegrationTests):
    pass
