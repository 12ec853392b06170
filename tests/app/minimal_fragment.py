"""The smallest Streamlit round trip a slider can make — one slider and one plotly bar chart in a fragment: the
browser test's yardstick for the Influence page's live area (``streamlit run tests/app/minimal_fragment.py``)."""
import plotly.graph_objects as go
import streamlit as st


@st.fragment
def minimal() -> None:
    x = st.slider("x", 0, 100, 50, key="x")
    st.plotly_chart(go.Figure(go.Bar(x=["a", "b", "c"], y=[x, 100 - x, x / 2])), key="bar",
                    config={"displayModeBar": False})


minimal()
