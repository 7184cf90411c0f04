//! `json_mode = "implicit_tool"`: the model is made to call one tool, `respond`, whose
//! parameters are the output schema, and the arguments it writes are the JSON answer. This is
//! done once here, around every adapter: the request gains the forced tool before it is
//! translated, and the answer's `respond` call becomes text after it is read, so each
//! provider only has to support tool calls.

use futures_util::StreamExt;
use serde_json::json;

use crate::model_call::{
    ChunkBlock, FinishReason, ModelChunk, ModelRequest, OutputBlock, ProviderOutput, ToolChoice,
    ToolConfig, ToolDef,
};

/// The name of the tool the model is made to call.
pub const TOOL_NAME: &str = "respond";

/// The request with the `respond` tool forced, or `None` when `json_mode` is not
/// `implicit_tool` (the request goes out as it is).
pub fn rewrite(request: &ModelRequest) -> Option<ModelRequest> {
    if request.params.json_mode != Some(crate::config::JsonMode::ImplicitTool) {
        return None;
    }
    let mut rewritten = request.clone();
    rewritten.params.json_mode = None;
    rewritten.tools = Some(ToolConfig {
        tools: vec![ToolDef {
            name: TOOL_NAME.into(),
            description: "Respond with a JSON object that follows the parameters' schema.".into(),
            parameters: request
                .output_schema
                .clone()
                .unwrap_or_else(|| json!({ "type": "object" })),
            strict: false,
        }],
        tool_choice: ToolChoice::Specific(TOOL_NAME.into()),
        // One forced tool: nothing to parallelise (and left unset, as the TensorZero Gateway does).
        parallel_tool_calls: None,
    });
    Some(rewritten)
}

/// The answer to a rewritten request, with the `respond` call turned into the text it carries.
pub fn unwrap(output: ProviderOutput) -> ProviderOutput {
    match output {
        ProviderOutput::Complete(mut response) => {
            response.content = response
                .content
                .into_iter()
                .map(|block| match block {
                    OutputBlock::ToolCall(call) if call.name == TOOL_NAME => {
                        OutputBlock::Text(call.arguments)
                    }
                    other => other,
                })
                .collect();
            response.finish_reason = response.finish_reason.map(stop_for_tool_call);
            ProviderOutput::Complete(response)
        }
        ProviderOutput::Stream { first, rest } => ProviderOutput::Stream {
            first: unwrap_chunk(first),
            rest: rest.map(|chunk| chunk.map(unwrap_chunk)).boxed(),
        },
    }
}

/// Only `respond` is offered, so every streamed tool-call delta is a piece of the answer (a
/// delta's name is only in its first piece, so it cannot be checked on each).
fn unwrap_chunk(mut chunk: ModelChunk) -> ModelChunk {
    chunk.content = chunk
        .content
        .into_iter()
        .filter_map(|block| match block {
            ChunkBlock::ToolCall { raw_arguments, .. } if raw_arguments.is_empty() => None,
            ChunkBlock::ToolCall { raw_arguments, .. } => Some(ChunkBlock::Text {
                id: "0".into(),
                text: raw_arguments,
            }),
            other => Some(other),
        })
        .collect();
    chunk.finish_reason = chunk.finish_reason.map(stop_for_tool_call);
    chunk
}

/// The model stopped to call `respond`: for the caller, it simply finished its answer.
fn stop_for_tool_call(reason: FinishReason) -> FinishReason {
    match reason {
        FinishReason::ToolCall => FinishReason::Stop,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_call::{ModelResponse, ToolCall};

    #[test]
    fn the_respond_call_becomes_the_answer() {
        let mut request = ModelRequest::default();
        assert!(rewrite(&request).is_none(), "other modes pass through");
        request.params.json_mode = Some(crate::config::JsonMode::ImplicitTool);
        request.output_schema = Some(json!({ "type": "object", "required": ["answer"] }));
        let rewritten = rewrite(&request).unwrap();
        let tools = rewritten.tools.unwrap();
        assert_eq!(tools.tool_choice, ToolChoice::Specific("respond".into()));
        assert_eq!(tools.tools[0].parameters["required"], json!(["answer"]));
        assert_eq!(rewritten.params.json_mode, None);

        let output = unwrap(ProviderOutput::Complete(ModelResponse {
            content: vec![OutputBlock::ToolCall(ToolCall {
                id: "c".into(),
                name: "respond".into(),
                arguments: "{\"answer\":42}".into(),
            })],
            usage: Default::default(),
            finish_reason: Some(FinishReason::ToolCall),
            raw: None,
        }));
        let ProviderOutput::Complete(response) = output else {
            panic!("not complete")
        };
        assert_eq!(
            response.content,
            vec![OutputBlock::Text("{\"answer\":42}".into())]
        );
        assert_eq!(response.finish_reason, Some(FinishReason::Stop));
    }
}
